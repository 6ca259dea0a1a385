"""Gradient penalties and Lipschitz tools for critics and discriminators.

Every penalty is a function of the per-sample input gradient g_i = d D(x)_i / d x_i at some points,
with the norm taken per sample over every non-batch dimension (never over the whole batch, never per
pixel):

============  ==========================================  ======================================
kind          points x                                    penalty
============  ==========================================  ======================================
``wgan-gp``   x̂_i = ε_i x_i + (1 - ε_i) G(z)_i,            λ · mean_i (||g_i|| - c)^2
              one ε_i ~ U[0, 1) per sample                 (Gulrajani et al. 2017)
``one-sided`` the same x̂                                  λ · mean_i max(0, ||g_i|| - c)^2
                                                           (Petzka et al. 2018)
``r1``        real data                                    γ/2 · mean_i ||g_i||^2 (Mescheder et al. 2018)
``r2``        generated data                               γ/2 · mean_i ||g_i||^2
``dragan``    x̃_i = x_i + ε_i δ_i, δ = k · std(x) · U[0,1)  λ · mean_i (||g_i|| - c)^2
              (perturbed real data)                        (Kodali et al. 2017)
============  ==========================================  ======================================

λ and γ are ``weight`` (default 10), c is ``center`` (default 1). Each kind fixes phi and the weight
convention; ``target=`` moves it to other points: ``real``, ``fake``, ``interpolates`` or ``perturbed``
(real data, DRAGAN's way), e.g. ``GradientPenalty("r1", target="interpolates")`` is the zero-centered
penalty on interpolates (Thanh-Tung et al. 2019). ``reduction="none"`` gives the per-sample values
(λ · phi(||g_i||), γ/2 · ||g_i||^2), ``"sum"`` their sum; the default is their mean. The norm, the penalty and its
derivative are one fused kernel (the "penalty head", :func:`gradient_norm_penalty`) on the CPU, CUDA
and Triton backends, computed in float32 (float64 for float64 gradients) whatever the gradient's
dtype. The parameter gradient is exact double backpropagation through the discriminator: on the
machines measured (docs/benchmarks.md) reverse-over-reverse beat forward-over-reverse and
reverse-over-forward (``torch.func.jvp``) by 1.4-1.8x in time.

Safety:

* **AMP.** Pass the ``GradScaler`` as ``scaler=``: the inner gradient is taken of the scaled outputs
  (so float16 gradients do not underflow) and unscaled before the norm, inside the fused head, with
  no host synchronization. Add the returned (unscaled) penalty to the loss you scale.
* **DDP.** ``gradient_penalty`` runs the penalty's forward through the wrapped module
  (``discriminator.module``), so DDP's hooks see one forward per step and each parameter's gradient
  once per backward: add the penalty to the critic loss and call ``backward()`` once; DDP then
  averages the sum over ranks (never differentiate through DDP's own forward twice).
* **torch.compile.** Double backward is not traced by ``torch.compile``; the penalty's inner gradient
  runs eagerly (a graph break), and the fused head's backward is an explicit kernel, so a compiled
  critic step gives the eager step's gradients (tested) or PyTorch's own error, never a silent
  wrong number.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

import torch
from torch import Tensor, nn

from ._ops.backend import FLOAT_DTYPES, check_backend, resolve
from ._ops.penalty_head import KINDS as _HEAD_KINDS
from ._ops.penalty_head import call_penalty_head
from ._ops.multi_tensor import call_clip_, dense
from ._ops.launch import compute_dtype
from ._validate import memo, number, positive_int

KINDS = ("wgan-gp", "one-sided", "r1", "r2", "dragan")
# Where a penalty is taken: the batch of real or generated samples itself, interpolates between
# them, or perturbed real samples.
TARGETS = ("real", "fake", "interpolates", "perturbed")
# kind -> its points unless target= says otherwise.
DEFAULT_TARGETS = {"wgan-gp": "interpolates", "one-sided": "interpolates", "r1": "real", "r2": "fake",
                   "dragan": "perturbed"}
# The kinds whose points involve generated samples (the others are taken on real data alone).
NEEDS_FAKE = tuple(k for k, t in DEFAULT_TARGETS.items() if t in ("fake", "interpolates"))
REDUCTIONS = ("mean", "sum", "none")
_ADDED = "a penalty is added to the loss"  # why a weight may not be negative

# kind -> the penalty head (phi of the per-sample norm) it uses.
_HEADS = {"wgan-gp": "two-sided", "one-sided": "one-sided", "r1": "squared", "r2": "squared",
          "dragan": "two-sided"}

__all__ = [
    "KINDS", "REDUCTIONS", "TARGETS", "GradientPenalty", "clip_weights_", "dragan_points", "gradient_norm_penalty",
    "gradient_penalty", "interpolate", "one_sided", "penalty_from_outputs", "r1", "r2", "wgan_gp",
]


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

def _check_tensor(name: str, t: object, *, min_dim: int = 1) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32, float64, float16 or bfloat16, got {t.dtype}")
    if t.dim() < min_dim:
        raise ValueError(f"{name} must have a batch dimension, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); a penalty needs at least one sample")
    return t


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown penalty kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    return kind


def _check_target(target: Optional[str], kind: str) -> str:
    if target is None:
        return DEFAULT_TARGETS[kind]
    if target not in TARGETS:
        raise ValueError(f"unknown penalty target {target!r}; valid targets: {', '.join(TARGETS)}")
    return target


def _needs_fake(target: str) -> bool:
    return target in ("fake", "interpolates")


def _check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduction!r}")
    return reduction


def _check_lazy(lazy: int) -> int:
    return positive_int("lazy", lazy, "the penalty applies every lazy steps")


def _require_grad() -> None:
    if not torch.is_grad_enabled():
        raise RuntimeError("a gradient penalty needs autograd (it differentiates the discriminator): it was "
                           "called under torch.no_grad() or inference_mode; call it with grad enabled")


def _weight_of(kind: str, weight: float) -> float:
    """The head's weight: γ/2 for R1 and R2 (their convention), λ otherwise."""
    return weight / 2 if _HEADS[kind] == "squared" else weight


# ---------------------------------------------------------------------------------------------
# The fused head and the functional forms
# ---------------------------------------------------------------------------------------------

def gradient_norm_penalty(grad: Tensor, *, head: str = "two-sided", center: float = 1.0,
                          weight: float = 1.0, inv_scale: Optional[Tensor] = None,
                          return_norms: bool = False, reduction: str = "mean",
                          backend: Optional[str] = None):
    """The penalty head: ``weight / B * sum_i phi(||grad_i||_2)`` over the B samples of ``grad``
    (``reduction="mean"``), ``weight * sum_i phi(||grad_i||_2)`` (``"sum"``) or the per-sample
    ``weight * phi(||grad_i||_2)`` (``"none"``, shape (B,)).

    ``head`` is ``"two-sided"`` (phi(n) = (n - c)^2), ``"one-sided"`` (max(0, n - c)^2) or
    ``"squared"`` (n^2); the norm runs over every non-batch dimension. One kernel computes the norms,
    the penalty and the derivative factors; backward is one elementwise kernel. ``inv_scale`` (a
    tensor, e.g. ``1 / scaler.get_scale()`` kept on the device) unscales a loss-scaled gradient
    before the norm. Returns the penalty (float32, or float64 for float64 input), and with
    ``return_norms`` also the per-sample norms.
    """
    _check_tensor("grad", grad)
    kind, center, weight, backend = memo(
        _HEAD_PLANS, (head, center, type(center), weight, type(weight), reduction, backend),
        lambda: _head_plan(head, center, weight, reduction, backend))
    resolve(backend, grad.device)  # an unavailable backend is a clear error before any work
    if inv_scale is not None:
        grad = grad * inv_scale.to(grad.dtype) if grad.dtype == torch.float64 else grad.float() * inv_scale
    if reduction == "none":
        _, norms, penalty = call_penalty_head(grad.contiguous(), (kind, center, weight, backend, True, True))
        return (penalty, norms) if return_norms else penalty
    scaled = weight * grad.shape[0] if reduction == "sum" else weight
    # Without the norms, one output: a cheaper autograd node.
    out = call_penalty_head(grad.contiguous(), (kind, center, scaled, backend, False, return_norms))
    return out if return_norms else out[0]


# The head's checked arguments by (head, center, weight, reduction, backend) (see _validate.memo).
_HEAD_PLANS: dict[tuple, tuple] = {}


def _head_plan(head: str, center: float, weight: float, reduction: str, backend: Optional[str]) -> tuple:
    """(kind code, center, weight, backend) of gradient_norm_penalty's arguments, checked."""
    _check_reduction(reduction)
    if head not in _HEAD_KINDS:
        raise ValueError(f"unknown penalty head {head!r}; valid heads: {', '.join(_HEAD_KINDS)}")
    return (_HEAD_KINDS[head], number("center", center),
            number("weight", weight, nonnegative=True, why=_ADDED), check_backend(backend))


def _input_gradient(outputs: Tensor, inputs: Tensor, scaler=None) -> tuple[Tensor, Optional[Tensor]]:
    """d sum(outputs) / d inputs with a graph for the parameter gradient, and the inverse scale
    to apply when a GradScaler scaled the outputs."""
    _check_tensor("outputs", outputs, min_dim=0)
    _check_tensor("inputs", inputs)
    if not inputs.requires_grad:
        raise ValueError("inputs must require grad and be the tensor the outputs were computed from "
                         "(call inputs.requires_grad_() before the discriminator's forward)")
    _require_grad()
    if not outputs.requires_grad:
        raise ValueError("outputs do not depend on inputs through autograd (no graph): compute them from "
                         "inputs with grad enabled, outside torch.no_grad()")
    if outputs.dim() == 0:
        raise ValueError("the discriminator's outputs are one number for the whole batch (shape ()); a "
                         "gradient penalty is taken per sample and needs one output per sample, shape "
                         f"({inputs.shape[0]}, ...): return the logits before any mean over the batch")
    if outputs.shape[0] != inputs.shape[0]:
        raise ValueError(f"outputs (shape {tuple(outputs.shape)}) and inputs (shape "
                         f"{tuple(inputs.shape)}) must have the same batch size")
    total = outputs.sum()
    inv_scale = None
    if scaler is not None and scaler.is_enabled():
        # Scale before the inner backward so that float16 gradients do not underflow; unscale in
        # the head (a device tensor: no host sync).
        total = scaler.scale(total)
        # scale() has just set _scale (a device tensor); invert it as GradScaler.unscale_ does.
        inv_scale = scaler._scale.double().reciprocal().float()
    (grad,) = torch.autograd.grad(total, inputs, create_graph=True)
    return grad, inv_scale


def penalty_from_outputs(outputs: Tensor, inputs: Tensor, *, head: str = "two-sided",
                         center: float = 1.0, weight: float = 10.0, scaler=None,
                         return_norms: bool = False, reduction: str = "mean", backend: Optional[str] = None):
    """``weight * mean_i phi(||d outputs_i / d inputs_i||)`` for outputs already computed from
    ``inputs`` (which must require grad); backward reaches the parameters that produced
    ``outputs`` through exact double backpropagation. ``outputs`` may have any per-sample shape
    (PatchGAN maps): the gradient is of their sum. ``reduction`` as for :func:`gradient_norm_penalty`."""
    _check_reduction(reduction)
    grad, inv_scale = _input_gradient(outputs, inputs, scaler)
    return gradient_norm_penalty(grad, head=head, center=center, weight=weight, inv_scale=inv_scale,
                                 return_norms=return_norms, reduction=reduction, backend=backend)


def r1(real_logits: Tensor, real_inputs: Tensor, *, weight: float = 10.0, scaler=None,
       reduction: str = "mean", backend: Optional[str] = None) -> Tensor:
    """R1: ``weight / 2 * mean_i ||d D(x_i) / d x_i||^2`` on real data (``real_inputs`` must require
    grad and be what ``real_logits`` came from). ``weight`` is the papers' gamma, under the name
    every pygan penalty uses; ``reduction="none"`` gives ``weight / 2 * ||g_i||^2`` per sample."""
    weight = number("weight", weight, nonnegative=True, why=_ADDED)
    return penalty_from_outputs(real_logits, real_inputs, head="squared", weight=weight / 2,
                                scaler=scaler, reduction=reduction, backend=backend)


def r2(fake_logits: Tensor, fake_inputs: Tensor, *, weight: float = 10.0, scaler=None,
       reduction: str = "mean", backend: Optional[str] = None) -> Tensor:
    """R2: R1's penalty on generated samples."""
    weight = number("weight", weight, nonnegative=True, why=_ADDED)
    return penalty_from_outputs(fake_logits, fake_inputs, head="squared", weight=weight / 2,
                                scaler=scaler, reduction=reduction, backend=backend)


def wgan_gp(logits: Tensor, inputs: Tensor, *, weight: float = 10.0, center: float = 1.0,
            scaler=None, reduction: str = "mean", backend: Optional[str] = None) -> Tensor:
    """WGAN-GP's two-sided ``weight * mean_i (||g_i|| - center)^2`` at the points ``inputs``
    (usually :func:`interpolate`'s) that ``logits`` came from."""
    return penalty_from_outputs(logits, inputs, head="two-sided", center=center, weight=weight,
                                scaler=scaler, reduction=reduction, backend=backend)


def one_sided(logits: Tensor, inputs: Tensor, *, weight: float = 10.0, center: float = 1.0,
              scaler=None, reduction: str = "mean", backend: Optional[str] = None) -> Tensor:
    """The one-sided ``weight * mean_i max(0, ||g_i|| - center)^2``."""
    return penalty_from_outputs(logits, inputs, head="one-sided", center=center, weight=weight,
                                scaler=scaler, reduction=reduction, backend=backend)


# ---------------------------------------------------------------------------------------------
# Points
# ---------------------------------------------------------------------------------------------

def _per_sample(like: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    """One U[0, 1) value per sample of ``like``, broadcastable over the sample's dimensions."""
    eps = torch.rand((like.shape[0],), generator=generator, device=like.device, dtype=torch.float32)
    return _broadcast(eps, like)


def _broadcast(eps: Tensor, like: Tensor) -> Tensor:
    """Per-sample values of shape (B,) in ``like``'s dtype, shaped to broadcast over its samples."""
    return eps.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def interpolate(real: Tensor, fake: Tensor, eps: Optional[Tensor] = None, *,
                generator: Optional[torch.Generator] = None) -> Tensor:
    """``x̂_i = eps_i * real_i + (1 - eps_i) * fake_i`` with one ``eps_i ~ U[0, 1)`` per sample (or
    the given ``eps`` of shape (B,)), detached from both inputs and requiring grad."""
    _check_tensor("real", real)
    _check_tensor("fake", fake)
    if real.shape != fake.shape:
        raise ValueError(f"real (shape {tuple(real.shape)}) and fake (shape {tuple(fake.shape)}) "
                         "must have the same shape to interpolate")
    if real.device != fake.device:
        raise ValueError(f"real is on {real.device} and fake on {fake.device}; they must share a device")
    if eps is None:
        eps = _per_sample(real, generator)
    else:
        if eps.shape != (real.shape[0],):
            raise ValueError(f"eps must have shape ({real.shape[0]},), one weight per sample, got "
                             f"{tuple(eps.shape)}")
        eps = _broadcast(eps, real)
    real, fake = real.detach(), fake.detach().to(real.dtype)
    return torch.lerp(fake, real, eps).requires_grad_(True)


def dragan_points(real: Tensor, *, spread: float = 0.5, generator: Optional[torch.Generator] = None) -> Tensor:
    """DRAGAN's perturbed data: ``x̃_i = x_i + eps_i * spread * std(x) * u_i`` with ``u ~ U[0, 1)``
    elementwise and one ``eps_i ~ U[0, 1)`` per sample; detached, requiring grad."""
    _check_tensor("real", real)
    real = real.detach()
    noise = torch.rand(real.shape, generator=generator, device=real.device, dtype=torch.float32)
    delta = spread * real.float().std() * noise
    eps = _per_sample(real, generator)
    return (real + eps * delta.to(real.dtype)).requires_grad_(True)


# ---------------------------------------------------------------------------------------------
# The module-level penalty
# ---------------------------------------------------------------------------------------------

_WRAPPERS = (nn.parallel.DistributedDataParallel, nn.DataParallel)


def _unwrap(module: Callable) -> Callable:
    # DDP and DataParallel: run the penalty's forward on the wrapped module (see the module docs).
    if isinstance(module, _WRAPPERS):
        return module.module
    return module


def penalty_points(target: str, real: Tensor, fake: Optional[Tensor], *, spread: float = 0.5,
                   generator: Optional[torch.Generator] = None) -> Tensor:
    """The points a penalty on ``target`` (:data:`TARGETS`) is taken at, detached and requiring grad:
    the real or the generated batch, :func:`interpolate` between them, or :func:`dragan_points`."""
    if target == "interpolates":
        return interpolate(real, fake, generator=generator)
    if target == "perturbed":
        return dragan_points(real, spread=spread, generator=generator)
    return (real if target == "real" else fake).detach().requires_grad_(True)


@torch.compiler.disable  # double backward is not traceable: run eagerly inside compiled code
def gradient_penalty(discriminator: Callable[[Tensor], Tensor], real: Tensor, fake: Optional[Tensor] = None,
                     *, kind: str = "wgan-gp", weight: float = 10.0, center: float = 1.0,
                     lazy: int = 1, step: int = 0, scaler=None, spread: float = 0.5,
                     generator: Optional[torch.Generator] = None, return_norms: bool = False,
                     target: Optional[str] = None, reduction: str = "mean",
                     backend: Optional[str] = None):
    """The gradient penalty ``kind`` of ``discriminator`` (see the module docs for the formulas), at
    its own points or those of ``target``.

    ``real`` and ``fake`` are detached (the penalty trains the discriminator only); ``fake`` is
    needed for the targets ``fake`` and ``interpolates`` (the kinds ``wgan-gp``, ``one-sided`` and
    ``r2``). ``lazy=k`` applies the penalty on steps with ``step % k == 0``, scaled by k (lazy
    regularization, Karras et al. 2020), and returns zeros on the others without running the
    discriminator. Returns a scalar (float32, float64 for float64 inputs; per-sample values of
    shape (B,) with ``reduction="none"``) whose backward gives the exact gradient for the
    discriminator's parameters, and with ``return_norms`` also the per-sample gradient norms (None
    on skipped steps).
    """
    _check_kind(kind)
    target = _check_target(target, kind)
    weight = number("weight", weight, nonnegative=True, why=_ADDED)
    center = number("center", center)
    _check_lazy(lazy)
    _check_reduction(reduction)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int (the training step, for lazy={lazy}), got {step!r}")
    _check_tensor("real", real)
    if _needs_fake(target):
        if fake is None:
            raise ValueError(f"penalty kind {kind!r} needs fake samples (its points: {target}); pass fake=")
        _check_tensor("fake", fake)
    elif fake is not None:
        raise ValueError(f"penalty kind {kind!r} is taken on real samples only and takes no fake= (its points: "
                         f"{target}); penalize generated samples with 'r2' (or target='fake' or 'interpolates')")
    _require_grad()  # also on the lazy steps that skip the work: the same call fails on every step
    if step % lazy != 0:
        zero = torch.zeros((real.shape[0],) if reduction == "none" else (), dtype=compute_dtype(real.dtype),
                           device=real.device)
        return (zero, None) if return_norms else zero
    points = penalty_points(target, real, fake, spread=spread, generator=generator)
    outputs = _unwrap(discriminator)(points)
    return _due_penalty(outputs, points, kind, weight, center, lazy, scaler, return_norms, reduction, backend)


def _due_penalty(outputs: Tensor, points: Tensor, kind: str, weight: float, center: float, lazy: int,
                 scaler, return_norms: bool, reduction: str, backend: Optional[str]):
    """The penalty ``kind`` on a step that applies it, from D's ``outputs`` at ``points``: its
    head, its weight convention, scaled by the lazy interval."""
    return penalty_from_outputs(outputs, points, **_head_args(kind, weight, center, lazy), scaler=scaler,
                                return_norms=return_norms, reduction=reduction, backend=backend)


def _head_args(kind: str, weight: float, center: float, lazy: int) -> dict:
    """The head of the penalty ``kind`` on a step that applies it: its phi, center and weight
    (the kind's convention, scaled by the lazy interval)."""
    return dict(head=_HEADS[kind], center=center, weight=_weight_of(kind, weight) * lazy)


class GradientPenalty(nn.Module):
    """:func:`gradient_penalty` as a module that counts its calls for lazy regularization:
    ``GradientPenalty("r1", weight=10, lazy=16)`` applies R1 (scaled by 16) on every 16th call and
    returns a zero otherwise; ``due`` says whether the next call applies it. ``target`` moves the
    penalty to other points (see the module docs). ``last_norms`` keeps the per-sample gradient
    norms of the last applied call (a statistic; no host sync).

    :class:`pygan.GAN` takes a list of them (``penalty=[GradientPenalty("r1", weight=g),
    GradientPenalty("r2", weight=g)]``) and sums them into D's loss; those on ``real`` or ``fake``
    take their gradient from the loss's own forward of that batch (:meth:`from_outputs`).
    ``scale`` multiplies ``weight`` in every call (1 unless a GAN's :class:`pygan.Anneal` sets it),
    so ``weight`` stays the weight it was built with."""

    def __init__(self, kind: str = "wgan-gp", *, weight: float = 10.0, center: float = 1.0,
                 lazy: int = 1, spread: float = 0.5, target: Optional[str] = None,
                 backend: Optional[str] = None) -> None:
        super().__init__()
        self.kind = _check_kind(kind)
        self.target = _check_target(target, kind)
        self.weight = number("weight", weight, nonnegative=True, why=_ADDED)
        self.center = number("center", center)
        self.lazy, self.spread, self.backend = _check_lazy(lazy), spread, backend
        self.calls = 0
        self.scale = 1.0
        self.last_norms: Optional[Tensor] = None

    @property
    def due(self) -> bool:
        return self.calls % self.lazy == 0

    @property
    def needs_fake(self) -> bool:
        """Whether the penalty's points involve generated samples (targets ``fake``, ``interpolates``)."""
        return _needs_fake(self.target)

    @property
    def name(self) -> str:
        """The kind, with the target when it is not the kind's own (``"r1@interpolates"``)."""
        return self.kind if self.target == DEFAULT_TARGETS[self.kind] else f"{self.kind}@{self.target}"

    def forward(self, discriminator: Callable[[Tensor], Tensor], real: Tensor,
                fake: Optional[Tensor] = None, *, scaler=None,
                generator: Optional[torch.Generator] = None) -> Tensor:
        penalty, norms = gradient_penalty(
            discriminator, real, fake if self.needs_fake else None, kind=self.kind, weight=self.weight * self.scale,
            center=self.center, lazy=self.lazy, step=self.calls, scaler=scaler, spread=self.spread,
            generator=generator, return_norms=True, target=self.target, backend=self.backend)
        return self._counted(penalty, norms)

    def _counted(self, penalty: Tensor, norms: Optional[Tensor]) -> Tensor:
        """Counts one call (lazy phase) and keeps the applied call's norms."""
        self.calls += 1
        if norms is not None:
            self.last_norms = norms.detach()
        return penalty

    def from_outputs(self, outputs: Tensor, inputs: Tensor, *, scaler=None) -> Tensor:
        """The penalty on a forward that already ran, for the targets ``real`` and ``fake``:
        ``outputs`` are D's logits of ``inputs`` (the real batch, or the fake one; it must require
        grad), the very forward the loss uses, so the penalty sees what the loss sees (the same
        dropout and augmentation draws) and D runs once. The call counts like :meth:`forward`; call
        it on due steps only (see :attr:`due`), where it applies the penalty scaled by ``lazy``."""
        self._check_shared("from_outputs")
        penalty, norms = _due_penalty(outputs, inputs, self.kind, self.weight * self.scale, self.center, self.lazy,
                                      scaler, True, "mean", self.backend)
        return self._counted(penalty, norms)

    def from_gradient(self, grad: Tensor) -> Tensor:
        """:meth:`from_outputs` for a batch whose input gradient ``grad`` = d D(x_i) / d x_i is
        already at hand, differentiable in D's weights (a critic that forms it in closed form,
        :meth:`pygan.models.MLPDiscriminator.step_forward`): only the head runs here."""
        self._check_shared("from_gradient")
        penalty, norms = gradient_norm_penalty(grad, **_head_args(self.kind, self.weight * self.scale, self.center,
                                                                  self.lazy), return_norms=True, backend=self.backend)
        return self._counted(penalty, norms)

    def _check_shared(self, method: str) -> None:
        if self.target not in ("real", "fake"):
            raise ValueError(f"{method} serves penalties on the batch itself (target 'real' or 'fake'); "
                             f"{self.name!r} takes its own points (call the module)")
        if not self.due:
            raise RuntimeError(f"{method} on a lazy step that skips the penalty (call {self.calls} of "
                               f"lazy={self.lazy}): check .due first")

    def extra_repr(self) -> str:
        target = "" if self.target == DEFAULT_TARGETS[self.kind] else f", target={self.target!r}"
        return f"kind={self.kind!r}, weight={self.weight}, center={self.center}, lazy={self.lazy}{target}"

    # The call counter is training state: checkpoints keep it so that lazy steps resume in phase.
    def get_extra_state(self) -> dict:
        return {"calls": self.calls}

    def set_extra_state(self, state: dict) -> None:
        self.calls = int(state["calls"])


# ---------------------------------------------------------------------------------------------
# Weight clipping
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def clip_weights_(module: nn.Module | Iterable[Tensor], c: float = 0.01, *,
                  backend: Optional[str] = None) -> None:
    """Clamps every parameter of ``module`` (or every tensor of an iterable) to [-c, c] in place,
    in one multi-tensor kernel per device (the original WGAN's Lipschitz constraint).

    Call it after the critic's optimizer step, every step: the constraint must hold for the weights
    the next critic evaluation uses, and clipping before the step would let the update move them
    out of the box again. For a softer constraint prefer a gradient penalty, or spectral
    normalization through torch's own parametrization:
    ``torch.nn.utils.parametrizations.spectral_norm(layer)`` on each layer of the critic.
    """
    c = number("c", c, positive=True)
    backend = check_backend(backend)
    params = list(module.parameters()) if isinstance(module, nn.Module) else list(module)
    groups: dict[torch.device, list[Tensor]] = {}
    for i, p in enumerate(params):
        if not isinstance(p, Tensor) or p.dtype not in FLOAT_DTYPES:
            raise TypeError(f"clip_weights_: parameter {i} must be a floating-point tensor, got "
                            f"{getattr(p, 'dtype', type(p).__name__)}")
        if not dense(p):
            raise ValueError(f"clip_weights_: parameter {i} (shape {tuple(p.shape)}, strides {p.stride()}) is "
                             "neither contiguous nor channels-last; clip it with p.clamp_(-c, c)")
        groups.setdefault(p.device, []).append(p)
    for device, tensors in groups.items():
        resolve(backend, device)
        call_clip_(tensors, c, backend)
