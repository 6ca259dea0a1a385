r"""Adversarial losses: logits in, loss out, as fused kernels with exact autograd.

Every loss takes raw discriminator outputs (logits) of any shape -- ``(B,)``, ``(B, 1)``, PatchGAN
maps ``(B, 1, H, W)`` -- and real and fake may differ in size. With ``reduction="mean"`` each side is
averaged over its own elements and the two means are added.

**f-divergences** (names of :data:`pygan.divergences.NAMES`; Nowozin et al. 2016). With
:math:`T = g_f(v)` the critic, D maximizes the variational bound, so

.. math::
    L_D = E_P[-g_f(v_r)] + E_Q[f^*(g_f(v_f))], \qquad
    L_G = -E_Q[g_f(v_f)] \ (\text{non-saturating}), \qquad
    L_G^{sat} = -E_Q[f^*(g_f(v_f))].

For ``"gan"`` this is the binary cross-entropy on logits: :math:`L_D = E_P[\mathrm{softplus}(-v_r)]
+ E_Q[\mathrm{softplus}(v_f)]`, :math:`L_G = E_Q[\mathrm{softplus}(-v_f)]` and the saturating
:math:`L_G^{sat} = E_Q[\log(1 - D(G(z)))]`.

**Other losses.**

- ``"wasserstein"``: :math:`L_D = E_Q[v_f] - E_P[v_r]`, :math:`L_G = -E_Q[v_f]`.
- ``"hinge"``: :math:`L_D = E_P[\max(0, 1 - v_r)] + E_Q[\max(0, 1 + v_f)]`, :math:`L_G = -E_Q[v_f]`.
- ``"least_squares"``: :math:`L_D = \tfrac12 E_P[(v_r - 1)^2] + \tfrac12 E_Q[v_f^2]`,
  :math:`L_G = \tfrac12 E_Q[(v_f - 1)^2]`.
- ``"relativistic"`` (pairing; real and fake of one shape):
  :math:`L_D = E[\mathrm{softplus}(-(v_r - v_f))]`, :math:`L_G = E[\mathrm{softplus}(-(v_f - v_r))]`.
- ``"relativistic_average"``: :math:`L_D = E_P[\mathrm{softplus}(-(v_r - \bar v_f))] +
  E_Q[\mathrm{softplus}(v_f - \bar v_r)]` and :math:`L_G` the same with real and fake swapped
  (:math:`\bar v` the mean logit). Gradients flow through the means.

The saturating generator loss (``saturating=True``) is the minimax one: G descends on D's objective,
i.e. minimizes minus D's fake term; for the relativistic losses, where both terms depend on G, it is
:math:`-L_D`.

**Joint generator player** (BiGAN, :func:`joint_generator_loss`): when the generator player also
produces the real side (pairs :math:`(x, E(x))`), its non-saturating loss is D's loss with the
labels swapped, and its saturating loss :math:`-L_D`.

**Semantics.** Computation and accumulation are in float32 for float16, bfloat16 and float32
inputs, and in float64 for float64; the loss has the promoted dtype of the inputs. Reductions are
deterministic. Terms stay finite for |v| up to 1e4 wherever the true value is finite in the
floating-point format. NaN logits propagate to the loss (and to their gradients); they are not an
error. Non-contiguous inputs are copied to contiguous memory first.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from ._ops import adversarial_loss as _loss_op, backend as _backend
from ._ops.launch import compute_dtype, empty
from ._ops.loss_terms import LOSS_NAMES, TERM_CODES, LossSpec, loss_spec
from ._validate import memo

__all__ = [
    "LOSS_NAMES", "LossTerms", "MinimaxLosses", "discriminator_loss", "generator_loss",
    "joint_generator_loss", "divergence_estimate", "minimax_losses", "DiscriminatorLoss",
    "GeneratorLoss", "DivergenceEstimate",
]



class LossTerms(NamedTuple):
    """Elementwise loss terms (``reduction="none"``): each field has its logits' shape, or is None
    where that side does not enter the loss. For the relativistic pairing loss the per-pair terms
    sit in the field of the side that is judged more realistic (``real`` for D, ``fake`` for G,
    saturating or not).
    ``mean`` of the terms of each field, added, is the ``reduction="mean"`` loss."""

    real: Optional[Tensor]
    fake: Optional[Tensor]


def _check_logits(name: str, x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of logits, got {type(x).__name__}")
    if x.dtype not in _backend.FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64 logits, got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); a loss needs at least one logit")
    return x if x.is_contiguous() else x.contiguous()


def _check_pair(real: Tensor, fake: Tensor) -> None:
    if real.device != fake.device:
        raise ValueError(f"real_logits and fake_logits must be on one device, got {real.device} and {fake.device}")


def _check_reduction(reduction: str) -> int:
    if reduction not in _backend.REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return _backend.REDUCTIONS[reduction]


def _consts(terms: tuple[str, str], signs: tuple[float, float], spec: LossSpec, reduction: int,
            backend: str) -> tuple:
    """A fused loss op's constants: (term0, term1, sign0, sign1, alpha, reduction, backend)."""
    return (TERM_CODES[terms[0]], TERM_CODES[terms[1]], *signs, spec.alpha, reduction, backend)


def _trains_in_compute_dtype(a: Tensor, b: Tensor, reduction: int) -> bool:
    """A reduced loss of inputs in the compute dtype that need gradients: where the relativistic
    losses run as one node (the difference or the means taken inside it)."""
    compute = compute_dtype(a.dtype, b.dtype)
    return (bool(reduction) and a.dtype == compute and b.dtype == compute and torch.is_grad_enabled()
            and (a.requires_grad or b.requires_grad))


def _launch(x0: Tensor, x1: Tensor, consts: tuple, shifts: tuple[Optional[Tensor], Optional[Tensor]] = (None, None),
            fields: tuple[bool, bool] = (True, True)):
    """The fused loss op for ``consts`` = (term0, term1, sign0, sign1, alpha, reduction, backend)."""
    if consts[5] and torch.is_grad_enabled() and (x0.requires_grad or x1.requires_grad or
                                                  _needs_grad(*shifts)):
        # Training: the gradient comes from the forward pass, backward only scales it.
        return _loss_op.call_loss_and_grad(x0, x1, *shifts, consts)
    if consts[5]:
        return _loss_op.adversarial_loss(x0, x1, *shifts, *consts)
    out0, out1 = _loss_op.adversarial_loss_terms(x0, x1, *shifts, *consts[:5], consts[6])
    return LossTerms(out0 if fields[0] else None, out1 if fields[1] else None)


class _Plan(NamedTuple):
    """A call's arguments other than the logits, checked: the loss, the reduction code, the backend,
    and the constants of its fused op, (term0, term1, sign0, sign1, alpha, reduction, backend): on
    the logits as given, at the pairs' differences (``"relativistic"``) or at the logits shifted by
    the other side's mean (``"relativistic_average"``)."""

    spec: LossSpec
    reduction: int
    backend: str
    consts: tuple


# Plans by (entry, loss, reduction, backend, flags, *params) (see _validate.memo).
_PLANS: dict[tuple, _Plan] = {}


def _plan(entry: str, loss: str, reduction: str, backend: Optional[str], params: dict,
          flags: tuple = ()) -> _Plan:
    """The plan of ``entry``: "d" (D's loss), "bound" (minus D's loss: the divergence bound), "g" or
    "joint" (``flags`` = (saturating,))."""
    key = (entry, loss, reduction, backend, flags, *[(k, v, type(v)) for k, v in params.items()]) \
        if params else (entry, loss, reduction, backend, flags)
    try:  # a known call without memo's frame and closure (about 0.3 us of a small call)
        plan = _PLANS.get(key)
    except TypeError:  # an unhashable argument: memo checks it every time, and the check names it
        plan = None
    return plan if plan is not None else \
        memo(_PLANS, key, lambda: _make_plan(entry, loss, reduction, backend, params, flags))


def _make_plan(entry: str, loss: str, reduction: str, backend: Optional[str], params: dict,
               flags: tuple) -> _Plan:
    spec, red, be = loss_spec(loss, params), _check_reduction(reduction), _backend.check_backend(backend)
    if spec.kind == "relativistic":
        # One side of the op: the pairs' differences, on the side of the player's own term
        # (the saturating G and a joint G run discriminator_loss's plan or generator_loss's).
        terms, signs = ((spec.real, spec.real), (1.0, 0.0)) if entry != "g" else \
            ((spec.gen, spec.gen), (0.0, 1.0))
    elif spec.kind == "relativistic_average" and entry == "g":  # G's view swaps the sides' roles
        terms, signs = (spec.fake, spec.gen), (1.0, 1.0)
    elif entry in ("d", "bound"):
        terms, signs = (spec.real, spec.fake), (1.0, 1.0) if entry == "d" else (-1.0, -1.0)
    elif entry == "joint":
        terms, signs = ((spec.real, spec.fake), (-1.0, -1.0)) if flags[0] else \
            ((spec.gen_real, spec.gen), (1.0, 1.0))
    else:  # G's own side only: the real side is the shared empty tensor
        term, sign = (spec.fake, -1.0) if flags[0] else (spec.gen, 1.0)
        terms, signs = (term, term), (0.0, sign)
    return _Plan(spec, red, be, _consts(terms, signs, spec, red, be))


def _checked(entry: str, real_logits: Tensor, fake_logits: Tensor, loss: str, params: dict,
             reduction: str, backend: Optional[str], flags: tuple = ()) -> tuple[_Plan, Tensor, Tensor]:
    """The arguments of a two-sided loss, checked: (plan, real, fake)."""
    plan = _plan(entry, loss, reduction, backend, params, flags)
    real = _check_logits("real_logits", real_logits)
    fake = _check_logits("fake_logits", fake_logits)
    if real.device != fake.device:
        _check_pair(real, fake)
    return plan, real, fake


def _needs_grad(*tensors: Optional[Tensor]) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _relativistic_average(real: Tensor, fake: Tensor, consts: tuple):
    """Relativistic average: each side shifted by the other side's mean logit. The whole loss runs
    in the compute dtype and comes back in the inputs' dtypes: through the means every gradient
    gathers a sum over the other side's per-element gradients, which must not be rounded to float16
    or bfloat16 before they are added."""
    if _trains_in_compute_dtype(real, fake, consts[5]):  # the means taken inside the loss's node
        return _loss_op.call_averaged_loss_and_grad(real, fake, consts)
    r = real.to(compute_dtype(real.dtype))
    f = fake.to(compute_dtype(fake.dtype))
    out = _launch(r, f, consts, (f.mean().to(r.dtype), r.mean().to(f.dtype)))
    if consts[5]:
        return out.to(torch.promote_types(real.dtype, fake.dtype))
    return LossTerms(out.real.to(real.dtype), out.fake.to(fake.dtype))


def _paired(a: Tensor, b: Tensor, consts: tuple):
    """Relativistic pairing: the op at a - b on the side whose sign in ``consts`` is not 0. The
    difference is formed in the compute dtype (a float16 difference would round away up to 2^-11 of
    it), and the result comes back in the inputs' promoted dtype like every other loss."""
    if a.shape != b.shape:
        _paired_shapes(a, b)
    if _trains_in_compute_dtype(a, b, consts[5]):  # the difference formed inside the loss's node
        return _loss_op.call_paired_loss_and_grad(a, b, consts)
    dtype = torch.promote_types(a.dtype, b.dtype)
    compute = compute_dtype(dtype)
    diff = a.to(compute) - b.to(compute)
    side = 0 if consts[2] else 1
    sides = [_empty_like_side(diff), _empty_like_side(diff)]
    sides[side] = diff
    out = _launch(sides[0], sides[1], consts, fields=(side == 0, side == 1))
    if consts[5]:
        return out.to(dtype)
    return LossTerms(*(None if t is None else t.to(dtype) for t in out))


def _paired_shapes(a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError("loss 'relativistic' pairs real and fake logits one to one: real_logits and "
                         f"fake_logits must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def _empty_like_side(x: Tensor) -> Tensor:
    return empty(x.dtype, x.device)


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, loss: str = "gan", *,
                       reduction: str = "mean", backend: Optional[str] = None, **params: float):
    r"""The discriminator's (critic's) loss, to be minimized; see the module docstring for every loss.

    For an f-divergence: :math:`L_D = E_P[-g_f(v_r)] + E_Q[f^*(g_f(v_f))]`.

    Args:
        real_logits: D's outputs on data samples, any shape.
        fake_logits: D's outputs on generated samples, any shape (same shape for ``"relativistic"``).
        loss: a name of :data:`LOSS_NAMES`.
        reduction: ``"mean"`` (per side, added), ``"sum"``, or ``"none"`` for :class:`LossTerms`.
        backend: ``"auto"`` (default), ``"cpu"``, ``"cuda"`` or ``"triton"``.
        **params: loss parameters: ``alpha`` for ``loss="alpha"``.
    """
    plan, real, fake = _checked("d", real_logits, fake_logits, loss, params, reduction, backend)
    kind = plan.spec.kind
    if kind == "relativistic":
        return _paired(real, fake, plan.consts)
    if kind == "relativistic_average":
        return _relativistic_average(real, fake, plan.consts)
    return _launch(real, fake, plan.consts)


def generator_loss(fake_logits: Tensor, loss: str = "gan", *, saturating: bool = False,
                   real_logits: Optional[Tensor] = None, reduction: str = "mean",
                   backend: Optional[str] = None, **params: float):
    r"""The generator's loss, to be minimized; see the module docstring for every loss.

    Non-saturating (default; f-GAN): :math:`L_G = -E_Q[g_f(v_f)]`. ``saturating=True``: the original
    minimax loss :math:`-E_Q[f^*(g_f(v_f))]`, for ``"gan"`` :math:`E_Q[\log(1 - D(G(z)))]`.
    The relativistic losses need ``real_logits``; gradients reach them too.
    """
    plan = _plan("g", loss, reduction, backend, params, (bool(saturating),))
    spec, red, be = plan.spec, plan.reduction, plan.backend
    fake = _check_logits("fake_logits", fake_logits)
    relativistic = spec.kind in ("relativistic", "relativistic_average")
    if relativistic and real_logits is None:
        raise ValueError(f"generator_loss with loss={loss!r} needs real_logits (D's outputs on data)")
    if not relativistic:
        if real_logits is not None:
            _check_pair(_check_logits("real_logits", real_logits), fake)
        if red and fake.requires_grad and torch.is_grad_enabled():  # training: G's side alone
            return _loss_op.call_generator_loss_and_grad(fake, plan.consts)
        return _launch(empty(fake.dtype, fake.device), fake, plan.consts, fields=(False, True))
    real = _check_logits("real_logits", real_logits)
    _check_pair(real, fake)
    if saturating:  # minimax: G ascends D's loss, whose every term depends on G
        out = discriminator_loss(real, fake, loss, reduction=reduction, backend=be)
        if red:
            return -out
        if spec.kind == "relativistic":  # G's per-pair terms sit in .fake, saturating or not
            return LossTerms(None, -out.real)
        return LossTerms(*(None if t is None else -t for t in out))
    if spec.kind == "relativistic":
        return _paired(fake, real, plan.consts)
    # Relativistic average, G's view: the real samples should look less real than the fakes.
    return _relativistic_average(real, fake, plan.consts)


def joint_generator_loss(real_logits: Tensor, fake_logits: Tensor, loss: str = "gan", *,
                         saturating: bool = False, reduction: str = "mean", backend: Optional[str] = None,
                         **params: float):
    r"""The loss of a generator player that produces *both* sides D compares, to be minimized:
    BiGAN's generator and encoder, whose real pairs :math:`(x, E(x))` move with E and fake pairs
    :math:`(G(z), z)` with G.

    Non-saturating (default): D's loss with the labels swapped,
    :math:`L_{GE} = E_P[\ell_f(v_r)] + E_Q[\ell_r(v_f)]` -- for ``"gan"``
    :math:`E_P[\mathrm{softplus}(v_r)] + E_Q[\mathrm{softplus}(-v_f)]`; the fake side is
    :func:`generator_loss`'s term, and for ``"hinge"`` (whose G term is :math:`-v_f`) the real side is
    :math:`+v_r`. ``saturating=True``: the minimax :math:`-L_D`. The relativistic losses already
    compare both sides: this is :func:`generator_loss` with ``real_logits``. One fused kernel.
    """
    plan, real, fake = _checked("joint", real_logits, fake_logits, loss, params, reduction, backend,
                                (bool(saturating),))
    if plan.spec.kind in ("relativistic", "relativistic_average"):
        return generator_loss(fake, loss, saturating=saturating, real_logits=real, reduction=reduction,
                              backend=plan.backend, **params)
    return _launch(real, fake, plan.consts)


def divergence_estimate(real_logits: Tensor, fake_logits: Tensor, loss: str, *,
                        backend: Optional[str] = None, **params: float) -> Tensor:
    r"""The f-GAN variational lower bound :math:`E_P[g_f(v_r)] - E_Q[f^*(g_f(v_f))] \le D_f(P\|Q)`.

    Tight at the optimal critic :math:`v^* = g_f^{-1}(f'(p/q))`; for ``"gan"`` it then equals
    :math:`2\,\mathrm{JSD}(P\|Q) - \log 4`. For ``"wasserstein"`` it is :math:`E_P[v_r] - E_Q[v_f]`,
    a lower bound on :math:`W_1(P, Q)` when the critic is 1-Lipschitz. Equals minus the mean
    discriminator loss, so it is differentiable like it.
    """
    plan, real, fake = _checked("bound", real_logits, fake_logits, loss, params, "mean", backend)
    if plan.spec.kind not in ("f", "ipm"):
        raise ValueError(f"divergence_estimate needs an f-divergence or 'wasserstein', got {loss!r} "
                         "(hinge, least_squares and the relativistic losses bound no divergence)")
    return _launch(real, fake, plan.consts)


class MinimaxLosses(NamedTuple):
    """Both players' losses at one pair of logit tensors, and the gradients each player
    backpropagates (detached, in the logits' dtypes): D's with respect to the real and the fake
    logits, G's with respect to the fake logits, and, for a joint generator player (BiGAN), G's with
    respect to the real logits (None otherwise)."""

    d_loss: Tensor
    g_loss: Tensor
    d_real_grad: Tensor
    d_fake_grad: Tensor
    g_fake_grad: Tensor
    g_real_grad: Optional[Tensor] = None


def minimax_losses(real_logits: Tensor, fake_logits: Tensor, loss: str = "gan", *,
                   saturating: bool = False, joint: bool = False, backend: Optional[str] = None,
                   **params: float) -> MinimaxLosses:
    r""":func:`discriminator_loss` and :func:`generator_loss` (mean reduction) of the same logits,
    with the upstream gradients :math:`\partial L_D/\partial v_r`, :math:`\partial L_D/\partial v_f`
    and :math:`\partial L_G/\partial v_f`, for a simultaneous update that backpropagates each
    player's gradient through one shared forward (:meth:`pygan.GAN.dg_step`). One kernel launch
    evaluates both players' terms on each logit it loads and writes both losses and all the
    gradients (``pygan::adversarial_minimax``). For the relativistic losses G's gradient is the
    one with respect to the fake logits only (the real logits do not depend on G). With ``joint=True`` the generator player produces both sides
    (BiGAN): :math:`L_G` is :func:`joint_generator_loss` and ``g_real_grad`` its gradient with
    respect to the real logits."""
    plan, real, fake = _checked("d", real_logits, fake_logits, loss, params, "mean", backend)
    spec, be = plan.spec, plan.backend
    real, fake = real.detach(), fake.detach()
    dtype = torch.promote_types(real.dtype, fake.dtype)
    terms = (spec.real, spec.fake)
    if spec.kind == "relativistic":
        # One side, d = v_r - v_f. G's term at v_f - v_r is gen(-d) = softplus(d), which is D's fake
        # term at d; the minimax G descends on -L_D.
        _paired_shapes(real, fake)
        compute = compute_dtype(dtype)
        d = real.to(compute) - fake.to(compute)
        g_term, g_sign = (spec.real, -1.0) if saturating else (spec.fake, 1.0)
        out = _minimax(d, _empty_like_side(d), None, None, (spec.real, spec.real), (1.0, 0.0),
                       (g_term, g_term), (g_sign, 0.0), spec, be)
        d_loss, g_loss, d_d, _, g_d, _ = out
        d_r, d_f, g_r, g_f = d_d, -d_d, g_d, -g_d
    else:
        g_terms, g_signs = _generator_terms(spec, saturating, joint)
        if spec.kind == "relativistic_average":  # each side shifted by the other's mean
            compute = compute_dtype(dtype)
            d_loss, g_loss, d_r, d_f, g_r, g_f = _loss_op.call_averaged_minimax(
                real.to(compute), fake.to(compute), _consts(terms, (1.0, 1.0), spec, 1, be),
                _consts(g_terms, g_signs, spec, 1, be))
        else:
            d_loss, g_loss, d_r, d_f, g_r, g_f = _minimax(real, fake, None, None, terms, (1.0, 1.0), g_terms,
                                                          g_signs, spec, be)
    return MinimaxLosses(d_loss.to(dtype), g_loss.to(dtype), d_r.to(real.dtype), d_f.to(fake.dtype),
                         g_f.to(fake.dtype), g_r.to(real.dtype) if joint else None)


def _generator_terms(spec: LossSpec, saturating: bool, joint: bool) -> tuple[tuple[str, str], tuple[float, float]]:
    """G's (term, sign) on the real and the fake side, on the logits (and shifts) of D's loss."""
    if spec.kind == "relativistic_average":  # G's view swaps the sides' roles (see generator_loss)
        return ((spec.real, spec.fake), (-1.0, -1.0)) if saturating else ((spec.fake, spec.gen), (1.0, 1.0))
    if joint:
        return ((spec.real, spec.fake), (-1.0, -1.0)) if saturating else ((spec.gen_real, spec.gen), (1.0, 1.0))
    return ((spec.fake, spec.fake), (0.0, -1.0)) if saturating else ((spec.gen, spec.gen), (0.0, 1.0))


def _minimax(x0: Tensor, x1: Tensor, shift0: Optional[Tensor], shift1: Optional[Tensor],
             terms: tuple[str, str], signs: tuple[float, float], g_terms: tuple[str, str],
             g_signs: tuple[float, float], spec: LossSpec, backend: str):
    return _loss_op.call_minimax(x0, x1, shift0, shift1, TERM_CODES[terms[0]], TERM_CODES[terms[1]], *signs,
                                 TERM_CODES[g_terms[0]], TERM_CODES[g_terms[1]], *g_signs, spec.alpha, backend)


class _LossModule(nn.Module):
    def __init__(self, loss: str, reduction: str, backend: Optional[str], params: dict) -> None:
        super().__init__()
        loss_spec(loss, params)  # fail at construction on a bad name or parameter
        self.loss, self.reduction, self.backend, self.params = loss, reduction, backend, dict(params)

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.params.items())
        return f"loss={self.loss!r}, reduction={self.reduction!r}{extra}"


class DiscriminatorLoss(_LossModule):
    """Module form of :func:`discriminator_loss`: ``DiscriminatorLoss("hinge")(real_logits, fake_logits)``."""

    def __init__(self, loss: str = "gan", *, reduction: str = "mean", backend: Optional[str] = None,
                 **params: float) -> None:
        super().__init__(loss, reduction, backend, params)

    def forward(self, real_logits: Tensor, fake_logits: Tensor):
        return discriminator_loss(real_logits, fake_logits, self.loss, reduction=self.reduction,
                                  backend=self.backend, **self.params)


class GeneratorLoss(_LossModule):
    """Module form of :func:`generator_loss`: ``GeneratorLoss("gan")(fake_logits)``."""

    def __init__(self, loss: str = "gan", *, saturating: bool = False, reduction: str = "mean",
                 backend: Optional[str] = None, **params: float) -> None:
        super().__init__(loss, reduction, backend, params)
        self.saturating = saturating

    def forward(self, fake_logits: Tensor, real_logits: Optional[Tensor] = None):
        return generator_loss(fake_logits, self.loss, saturating=self.saturating,
                              real_logits=real_logits, reduction=self.reduction,
                              backend=self.backend, **self.params)


class DivergenceEstimate(_LossModule):
    """Module form of :func:`divergence_estimate`."""

    def __init__(self, loss: str, *, backend: Optional[str] = None, **params: float) -> None:
        super().__init__(loss, "mean", backend, params)

    def forward(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return divergence_estimate(real_logits, fake_logits, self.loss, backend=self.backend, **self.params)
