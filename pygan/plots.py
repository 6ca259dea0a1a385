"""Pictures of a training run (matplotlib, imported only when drawing; the Agg backend, no display).

- :func:`save_samples`: 2-D points as a scatter over the data's true modes, 1-D samples as a
  histogram, images as a grid.
- :func:`save_losses`: the logged statistics against the step.
- :func:`save_reconstructions`: data beside its reconstructions G(E(x)) (BiGAN): image pairs, or
  points joined to their reconstructions by segments.
"""

from __future__ import annotations

import math
import os
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

__all__ = ["image_grid", "save_losses", "save_reconstructions", "save_samples"]


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("drawing pictures needs matplotlib: pip install matplotlib") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def image_grid(images: Tensor, nrow: Optional[int] = None) -> Tensor:
    """(n, C, H, W) images in [-1, 1] as one (H', W', C) grid in [0, 1] with 1-pixel gaps."""
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = torch.ones((c, rows * (h + 1) + 1, nrow * (w + 1) + 1))
    x = ((images.detach().float().cpu() + 1) / 2).clamp(0, 1)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[:, 1 + r * (h + 1):1 + r * (h + 1) + h, 1 + col * (w + 1):1 + col * (w + 1) + w] = x[i]
    return grid.permute(1, 2, 0)


def save_samples(samples: Tensor, path: Union[str, os.PathLike], *, real: Optional[Tensor] = None,
                 centers: Optional[Tensor] = None, title: str = "", per_row: Optional[int] = None) -> None:
    """Draws ``samples`` to ``path`` (with ``real`` samples and the ``centers`` of the modes for
    points). Images: up to 64 in a square grid, or all of them ``per_row`` to a row (a conditional
    GAN's samples, one row per class)."""
    plt = _pyplot()
    samples = samples.detach().float().cpu()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    if samples.dim() == 4:
        _show_grid(ax, samples if per_row else samples[:64], per_row)
    elif samples.dim() == 2 and samples.shape[1] == 2:
        if real is not None:
            r = real.detach().float().cpu()
            ax.scatter(r[:, 0], r[:, 1], s=2, c="0.75", label="data")
        ax.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:blue", alpha=0.6, label="generated")
        if centers is not None:
            c = centers.detach().float().cpu()
            ax.scatter(c[:, 0], c[:, 1], s=60, marker="x", c="tab:red", label="modes")
        ax.set_aspect("equal")
        _legend_below(ax)
    elif samples.dim() == 2 and samples.shape[1] == 1:
        bins = 100
        if real is not None:
            ax.hist(real.detach().float().cpu()[:, 0], bins=bins, density=True, color="0.75", label="data")
        ax.hist(samples[:, 0], bins=bins, density=True, alpha=0.6, label="generated")
        ax.legend(fontsize=7)
    else:
        plt.close(fig)
        raise ValueError(f"cannot draw samples of shape {tuple(samples.shape)}: need (n, 1), (n, 2) or (n, C, H, W)")
    _finish(plt, fig, ax, path, title)


def _legend_below(ax) -> None:
    """A scatter's legend under the axes, where it cannot hide points (a grid's corner mode)."""
    legend = ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.05), ncol=3, fontsize=7, frameon=False)
    for handle in getattr(legend, "legend_handles", None) or legend.legendHandles:
        handle.set_sizes([20])  # the tiny sample dots and the large mode crosses, alike in the key


def _show_grid(ax, images: Tensor, nrow: Optional[int] = None) -> None:
    grid = image_grid(images, nrow)
    ax.imshow(grid.squeeze(-1), cmap="gray" if grid.shape[-1] == 1 else None, interpolation="nearest")
    ax.axis("off")


def _finish(plt, fig, ax, path: Union[str, os.PathLike], title: str) -> None:
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_reconstructions(x: Tensor, x_hat: Tensor, path: Union[str, os.PathLike], *, title: str = "") -> None:
    """Draws data ``x`` beside its reconstructions ``x_hat``: for images, columns of (x, G(E(x)))
    pairs (up to 32); for 2-D points, each point joined to its reconstruction (up to 300)."""
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat must have one shape, got {tuple(x.shape)} and {tuple(x_hat.shape)}")
    plt = _pyplot()
    x, x_hat = x.detach().float().cpu(), x_hat.detach().float().cpu()
    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    if x.dim() == 4:
        n = min(32, x.shape[0])
        pairs = torch.stack([x[:n], x_hat[:n]], 1).flatten(0, 1)  # x, G(E(x)), x, G(E(x)), ...
        _show_grid(ax, pairs, nrow=8)
        title = (title + "\n" if title else "") + "pairs left to right: x, then G(E(x))"
    elif x.dim() == 2 and x.shape[1] == 2:
        n = min(300, x.shape[0])
        for a, b in zip(x[:n], x_hat[:n]):
            ax.plot([a[0], b[0]], [a[1], b[1]], c="0.6", lw=0.5)
        ax.scatter(x[:n, 0], x[:n, 1], s=4, c="tab:blue", label="x")
        ax.scatter(x_hat[:n, 0], x_hat[:n, 1], s=4, c="tab:orange", label="G(E(x))")
        ax.set_aspect("equal")
        _legend_below(ax)
    else:
        plt.close(fig)
        raise ValueError(f"cannot draw reconstructions of shape {tuple(x.shape)}: need (n, 2) or (n, C, H, W)")
    _finish(plt, fig, ax, path, title)


def save_translations(rows: Sequence[tuple[str, Tensor]], path: Union[str, os.PathLike], *, title: str = "") -> None:
    """Draws labelled rows of images (n, C, H, W), one row each, to ``path``: a CycleGAN's sources,
    their translations and their round trips, per direction."""
    if not rows or any(x.dim() != 4 or x.shape != rows[0][1].shape for _, x in rows):
        raise ValueError("rows must be (label, images) pairs with images of one shape (n, C, H, W)")
    plt = _pyplot()
    n = rows[0][1].shape[0]
    fig, axes = plt.subplots(len(rows), 1, figsize=(max(4.0, 0.45 * n), 0.62 * len(rows) + 0.5), dpi=120)
    for ax, (label, x) in zip(axes if len(rows) > 1 else [axes], rows):
        _show_grid(ax, x.detach().float().cpu(), nrow=n)
        ax.set_title(label, fontsize=7, loc="left", pad=2)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_losses(records: Sequence[dict], path: Union[str, os.PathLike],
                keys: Sequence[str] = ("d_loss", "g_loss", "divergence", "penalty", "cycle", "identity")) -> None:
    """Plots the logged statistics ``keys`` of ``records`` (fit's log lines) against the step."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    steps = [r["step"] for r in records]
    for k in keys:
        values = [r.get(k) for r in records]
        if any(v is not None for v in values) and any(v for v in values if v is not None):
            ax.plot(steps, [float("nan") if v is None else v for v in values], label=k)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
