"""Reports, as JSON-ready dicts: :func:`evaluate`, how far generated samples are from the data (every
two-sample statistic of :mod:`pygan.metrics`; ``python -m pygan eval``), :func:`evaluate_inference`,
what a :class:`pygan.BiGAN`'s encoder learned, :func:`evaluate_conditional`, how well a
class-conditional GAN's samples match the classes asked for, and :func:`evaluate_translation`, what a
:class:`pygan.CycleGAN`'s translations keep and where they land.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from . import metrics
from .bigan import pack_pair
from .gan import _eval_mode


def evaluate(fake: Tensor, real: Tensor, *, centers: Optional[Tensor] = None, std: Optional[float] = None,
             permutations: int = 200, fdiv: Sequence[str] = ("js",), fdiv_steps: int = 500,
             c2st_steps: int = 500, seed: int = 0, backend: Optional[str] = None) -> dict[str, Any]:
    """Compares ``fake`` with ``real`` (both (n, ...) samples, flattened to rows): sizes, the mean
    and variance tests, MMD^2 (gaussian kernel at 0.5, 1 and 2 times the median distance, with
    permutation p-values), KID, the classifier two-sample test, f-divergence estimates for the
    names in ``fdiv``, W1 per coordinate in 1-D, and mode coverage when ``centers`` and ``std`` of
    the data's modes are given (on the first :data:`pygan.metrics.PROTOCOL_SAMPLES` samples, the
    mode-collapse protocol's count). Each entry also records the seconds it took."""
    x, y = fake.detach().flatten(1).double(), real.detach().flatten(1).double()
    out: dict[str, Any] = {"n_fake": x.shape[0], "n_real": y.shape[0], "dims": x.shape[1]}
    times: dict[str, float] = {}

    def timed(name, fn):
        start = time.perf_counter()
        out[name] = fn()
        times[name] = round(time.perf_counter() - start, 3)

    timed("mean_difference", lambda: metrics.mean_difference_test(x, y, permutations=permutations, seed=seed).as_dict())
    timed("variance", lambda: metrics.variance_test(x, y, permutations=permutations, seed=seed).as_dict())
    med = metrics.median_bandwidth(x, y, seed=seed)
    timed("mmd2_gaussian", lambda: metrics.mmd2(x.float(), y.float(), bandwidth=[0.5 * med, med, 2 * med],
                                                 permutations=permutations, seed=seed, backend=backend).as_dict())
    timed("kid", lambda: metrics.kid(x.float(), y.float(), subsets=20, subset_size=min(1000, len(x), len(y)), seed=seed,
                                     backend=backend).as_dict())
    timed("c2st", lambda: {k: v for k, v in metrics.c2st(x, y, steps=c2st_steps, permutations=1000,
                                                         seed=seed).as_dict().items() if k != "train_loss"})
    for name in fdiv:
        timed(f"fdiv_{name}", lambda: {k: v for k, v in metrics.fdiv_estimate(
            x, y, name, steps=fdiv_steps, batch_size=1024, seed=seed, backend=backend).as_dict().items()
            if k != "history"})
    if x.shape[1] == 1:
        timed("w1", lambda: metrics.w1_1d(x[:, 0], y[:, 0]))
    if centers is not None and std is not None:
        # The protocol's count of samples (VEEGAN, PacGAN), so its numbers compare with theirs.
        timed("mode_coverage", lambda: metrics.mode_coverage(x[:metrics.PROTOCOL_SAMPLES], centers, std).as_dict())
    out["seconds"] = times
    return out


@torch.no_grad()
def evaluate_inference(bigan: Any, x: Tensor, *, labels: Optional[Tensor] = None,
                       test_x: Optional[Tensor] = None, test_labels: Optional[Tensor] = None,
                       latent_samples: int = 5000, seed: int = 0, batch_size: int = 1024) -> dict[str, Any]:
    """What ``bigan`` (a :class:`pygan.BiGAN`) learned, with its EMA weights when it has them:

    - ``latent_recovery``: :func:`pygan.metrics.latent_recovery` of E(G(z)) against
      ``latent_samples`` prior draws z;
    - ``reconstruction``: :func:`pygan.metrics.reconstruction_error` of G(E(x)) on ``test_x`` (or
      ``x``);
    - with ``labels`` and a held-out ``test_x``/``test_labels``: ``features``, the probes of
      :func:`pygan.metrics.feature_probes` (fitted on ``x``, scored on ``test_x``) for ``encoder``
      (E(x)), ``discriminator`` (D's penultimate layer on the pair (x, E(x)), when D has
      ``features``) and ``pixels`` (x itself).
    """

    def batched(fn, *data: Tensor) -> Tensor:
        return torch.cat([fn(*(t[i:i + batch_size] for t in data)) for i in range(0, data[0].shape[0], batch_size)])

    z = bigan.prior(latent_samples, bigan.device, torch.Generator(device=bigan.device).manual_seed(seed))
    z_hat = batched(lambda b: bigan.encode(bigan.generate(b)), z)
    out: dict[str, Any] = {"latent_recovery": metrics.latent_recovery(z, z_hat).as_dict()}
    held = test_x if test_x is not None else x
    out["reconstruction"] = metrics.reconstruction_error(held, batched(bigan.reconstruct, held)).as_dict()
    if labels is not None and test_x is not None and test_labels is not None:
        codes = {"train": batched(bigan.encode, x), "test": batched(bigan.encode, test_x)}
        features = {"encoder": codes}
        d = bigan.discriminator
        if hasattr(d, "features"):
            with _eval_mode(d):
                features["discriminator"] = {
                    split: batched(lambda a, c: d.features(pack_pair(a, c)).float(), data, codes[split])
                    for split, data in (("train", x), ("test", test_x))}
        features["pixels"] = {"train": x, "test": test_x}
        out["features"] = {name: metrics.feature_probes(f["train"], labels, f["test"], test_labels).as_dict()
                           for name, f in features.items()}
    return out


@torch.no_grad()
def evaluate_conditional(gan: Any, train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, *,
                         k: int = 5, seed: int = 0, ema: bool = True) -> dict[str, Any]:
    """What a class-conditional ``gan`` makes of each class (its EMA generator when it has one and
    ``ema``), against the labelled real data split into ``train`` and held-out ``test``:

    - ``accuracy`` / ``per_class_accuracy``: :func:`pygan.metrics.class_accuracy`, a classifier
      fitted on the training split classifying samples generated for each class, beside its own
      ``real_accuracy`` on the held-out split (the ceiling) and ``chance``;
    - ``coverage`` / ``per_class_coverage``: :func:`pygan.metrics.knn_coverage` of each class of the
      training split by as many generated samples of that class as the held-out split has, beside
      ``real_coverage`` / ``real_per_class_coverage``: the same of the held-out samples themselves
      (what a generator of the data scores at that count).
    """
    classes = gan.num_classes
    if classes is None:
        raise ValueError("evaluate_conditional needs a class-conditional GAN (num_classes set)")
    gen = torch.Generator(device=gan.device).manual_seed(seed)
    fakes, fake_y, cov, real_cov = [], [], [], []
    for c in range(classes):
        ref, held = train_x[train_y == c], test_x[test_y == c]
        if ref.shape[0] <= k or held.shape[0] == 0:
            raise ValueError(f"class {c} has {ref.shape[0]} training and {held.shape[0]} held-out samples; "
                             f"coverage needs more than k={k} and at least 1")
        fake = gan.sample(held.shape[0], labels=c, generator=gen, ema=ema).cpu()
        fakes.append(fake)
        fake_y.append(torch.full((fake.shape[0],), c, dtype=torch.int64))
        cov.append(metrics.knn_coverage(ref.cpu(), fake, k=k))
        real_cov.append(metrics.knn_coverage(ref.cpu(), held.cpu(), k=k))
    acc = metrics.class_accuracy(train_x.cpu(), train_y.cpu(), test_x.cpu(), test_y.cpu(), torch.cat(fakes),
                                 torch.cat(fake_y))
    return {"accuracy": acc.accuracy, "per_class_accuracy": acc.per_class, "real_accuracy": acc.real_accuracy,
            "chance": acc.chance, "coverage": sum(cov) / classes, "per_class_coverage": cov,
            "real_coverage": sum(real_cov) / classes, "real_per_class_coverage": real_cov, "k": k}


KID_SUBSETS = 50


@torch.no_grad()
def evaluate_translation(cyclegan: Any, train: Any, test: Any, *, ema: bool = True, seed: int = 0,
                         batch: int = 512) -> dict[str, Any]:
    """A :class:`pygan.CycleGAN`'s translations of the held-out images of each domain, ``test`` (a
    :class:`pygan.data.UnpairedSampler` with labels), scored against the other domain, per direction
    (``"a_to_b"``: G on test A; ``"b_to_a"``: F on test B), each beside what the identity mapping
    (the untranslated source images) and real target images score:

    - ``label_accuracy``: label preservation, the share of translations that a classifier fitted
      on the target domain's ``train`` images (:func:`pygan.metrics.class_accuracy`, logistic
      regression on pixels) labels as their source image's class; ``identity_label_accuracy`` the
      same of the source images themselves; ``classifier_accuracy`` the classifier's accuracy on
      the target's held-out images (the ceiling); ``chance``;
    - ``cycle_error``: the mean absolute difference of the round trip, ``|F(G(a)) - a|`` (on the
      [-1, 1] pixel scale);
    - ``kid``: :func:`pygan.metrics.kid` (on pixels: no Inception network ships here) of the
      translations against the target's held-out images; ``identity_kid`` of the source images;
      ``real_kid`` of as many target training images (the floor).
    """
    out: dict[str, Any] = {"domains": list(getattr(test, "names", ("A", "B")))}
    for key, src, dst_train, dst_test, forward, back in (
            ("a_to_b", test.a, train.b, test.b, "g_ab", "g_ba"),
            ("b_to_a", test.b, train.a, test.a, "g_ba", "g_ab")):
        x, y = src.data, src.labels
        chunks = [cyclegan._translate(c, "x", forward, ema=ema) for c in x.split(batch)]
        rec = torch.cat([cyclegan._translate(c, "x", back, ema=ema) for c in chunks]).cpu()  # back from G(a)
        fake = torch.cat(chunks).cpu()
        classifier = metrics.RealClassifier(dst_train.data.cpu(), dst_train.labels.cpu(), dst_test.data.cpu(),
                                            dst_test.labels.cpu())
        acc, idt = classifier.score(fake, y.cpu()), classifier.score(x.cpu(), y.cpu(), "source")
        size = min(x.shape[0], dst_test.data.shape[0], dst_train.data.shape[0]) * 9 // 10
        kid = dict(subsets=KID_SUBSETS, subset_size=size, seed=seed)
        target = dst_test.data.cpu().flatten(1)
        real = dst_train.data[torch.randperm(dst_train.data.shape[0], generator=torch.Generator().manual_seed(seed))
                              [:x.shape[0]].to(dst_train.data.device)].cpu().flatten(1)
        k_fake, k_idt, k_real = (metrics.kid(f, target, **kid) for f in (fake.flatten(1), x.cpu().flatten(1), real))
        out[key] = {"label_accuracy": acc.accuracy, "per_class_label_accuracy": acc.per_class,
                    "identity_label_accuracy": idt.accuracy, "classifier_accuracy": acc.real_accuracy,
                    "chance": acc.chance, "cycle_error": float((rec - x.cpu()).abs().mean()),
                    "kid": k_fake.mean, "kid_std": k_fake.std, "identity_kid": k_idt.mean, "real_kid": k_real.mean,
                    "kid_subset_size": size, "samples": x.shape[0]}
    return out


def load_samples(path: Path) -> Tensor:
    """Samples from a file: ``.pt`` (a tensor), ``.npy``, or text (``.csv``, ``.txt``: one sample
    per row, comma or whitespace separated)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no sample file {path}")
    if path.suffix == ".pt":
        data = torch.load(path, map_location="cpu", weights_only=True)
    elif path.suffix == ".npy":
        import numpy as np

        data = torch.from_numpy(np.load(path, allow_pickle=False))
    elif path.suffix in (".csv", ".txt"):
        import numpy as np

        data = torch.from_numpy(np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2))
    else:
        raise ValueError(f"unknown sample file type {path.suffix!r} of {path}: use .pt, .npy, .csv or .txt")
    if not isinstance(data, Tensor):
        raise ValueError(f"{path} holds a {type(data).__name__}, not a tensor of samples")
    return data.double()
