"""Which elementwise term each loss applies to each side, and the float64 reference of every term.

A loss is ``sum_k w_k * sum_i term_k(x_k[i] - shift_k)`` over the real and fake logits, with
``w_k = sign_k / n_k`` for ``reduction="mean"``. The kernels (csrc/loss_terms.h,
triton_kernels/math.py) implement the terms by code; :data:`TERM_CODES` must match the C++ enum
(a test checks it against ``pygan._C.term_codes()``).

The reference functions are written with plain PyTorch ops and are the oracle of the tests (in
float64) and the eager baseline of the benchmarks (in the input dtype). For the f-divergences,
``REAL`` terms equal ``-g_f(v)`` and ``FAKE`` terms equal ``f*(g_f(v))`` of pygan.divergences; a test
checks every pair against that composition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..divergences import LOG2, NAMES as F_DIVERGENCES, log_wright_omega_1m

TERM_NAMES: tuple[str, ...] = (
    "NEG", "POS", "EXP_U_MINUS_1", "EXP_NEG", "U_MINUS_1", "PEARSON_FAKE", "EXPM1_NEG",
    "NEYMAN_FAKE", "EXPM1", "JEFFREY_FAKE", "SOFTPLUS_NEG", "SOFTPLUS", "JS_REAL", "JS_FAKE",
    "TV_REAL", "TV_FAKE", "ALPHA_LT1_REAL", "ALPHA_LT1_FAKE", "ALPHA_GT1_FAKE", "HINGE_REAL",
    "HINGE_FAKE", "HALF_SQ_U_MINUS_1", "HALF_SQ",
)
TERM_CODES: dict[str, int] = {name: code for code, name in enumerate(TERM_NAMES)}


def _softplus(u: Tensor) -> Tensor:
    # log(1 + e^u) to full precision: F.softplus returns u itself above its threshold of 20,
    # dropping the e^-u that float64 can still carry.
    return torch.logaddexp(u, torch.zeros_like(u))


def _expm1(u: Tensor) -> Tensor:
    # e^u - 1 whose autograd derivatives are e^u itself: torch.expm1's backward forms
    # expm1(u) + 1, which cancels to a relative error of up to 1e-3 for u near -30. expm1 serves
    # only |u| < 1/2, where that sum is at least 0.39 (no cancellation); outside, e^u - 1 is exact
    # to rounding, as e^u <= 0.61 or e^u >= 1.65.
    return torch.where(u.abs() < 0.5, torch.expm1(u), torch.exp(u) - 1.0)


def _tanh(u: Tensor) -> Tensor:
    # tanh whose autograd derivatives stay accurate: torch.tanh's backward forms 1 - tanh(u)^2,
    # which cancels completely for |u| > 19. For |u| >= 1/2, tanh(|u|) = 1 - 2 sigmoid(-2|u|), whose
    # derivative 4 s (1 - s) has no cancellation; torch.tanh serves |u| < 1/2, where 1 - tanh^2 > 0.78.
    t = 1.0 - 2.0 * torch.sigmoid(-2.0 * u.abs())
    return torch.where(u.abs() < 0.5, torch.tanh(u), torch.where(u > 0, t, -t))


def _jeffrey_fake(u: Tensor, a: float) -> Tensor:
    z = log_wright_omega_1m(u)
    return _expm1(-z) - z


def _alpha_lt1_fake(u: Tensor, a: float) -> Tensor:
    return (((1.0 - a) * _softplus(-u)).pow(a / (a - 1.0)) - 1.0) / a


def _alpha_gt1_fake(u: Tensor, a: float) -> Tensor:
    # s^(a/(a-1)) with log s = log1p((a-1) u): exact near u = 0; s <= 0 gives -1/a. The branch
    # sees only s > 0, so that autograd's derivative at s = 0 is 0 (not 0 * inf = nan).
    w = (a - 1.0) * u
    inside = w > -1.0
    safe = torch.where(inside, w, torch.zeros_like(w))
    return torch.where(inside, _expm1(a / (a - 1.0) * torch.log1p(safe)) / a, torch.full_like(u, -1.0 / a))


def _js_real(u: Tensor) -> Tensor:
    # softplus(-u) - log 2 = -log1p(tanh(u/2)), the latter accurate near its zero at u = 0.
    return torch.where(u < -1.0, _softplus(-u) - LOG2, -torch.log1p(_tanh(0.5 * u)))


REFERENCE: dict[str, Callable[[Tensor, float], Tensor]] = {
    "NEG": lambda u, a: -u,
    "POS": lambda u, a: u,
    "EXP_U_MINUS_1": lambda u, a: torch.exp(u - 1.0),
    "EXP_NEG": lambda u, a: torch.exp(-u),
    "U_MINUS_1": lambda u, a: u - 1.0,
    "PEARSON_FAKE": lambda u, a: 0.25 * u * u + u,
    "EXPM1_NEG": lambda u, a: _expm1(-u),
    "NEYMAN_FAKE": lambda u, a: -2.0 * _expm1(-0.5 * u),
    "EXPM1": lambda u, a: _expm1(u),
    "JEFFREY_FAKE": _jeffrey_fake,
    "SOFTPLUS_NEG": lambda u, a: _softplus(-u),
    "SOFTPLUS": lambda u, a: _softplus(u),
    "JS_REAL": lambda u, a: _js_real(u),
    "JS_FAKE": lambda u, a: _js_real(-u),
    "TV_REAL": lambda u, a: -0.5 * _tanh(u),
    "TV_FAKE": lambda u, a: 0.5 * _tanh(u),
    "ALPHA_LT1_REAL": lambda u, a: _softplus(-u) - 1.0 / (1.0 - a),
    "ALPHA_LT1_FAKE": _alpha_lt1_fake,
    "ALPHA_GT1_FAKE": _alpha_gt1_fake,
    "HINGE_REAL": lambda u, a: F.relu(1.0 - u),
    "HINGE_FAKE": lambda u, a: F.relu(1.0 + u),
    "HALF_SQ_U_MINUS_1": lambda u, a: 0.5 * (u - 1.0) ** 2,
    "HALF_SQ": lambda u, a: 0.5 * u * u,
}
assert tuple(REFERENCE) == TERM_NAMES


@dataclass(frozen=True)
class LossSpec:
    """The terms of one loss: D's real and fake terms and the non-saturating G term (on fakes).

    ``kind`` is "f" (an f-divergence), "ipm" (wasserstein), "margin" (hinge, least_squares) or
    "relativistic" / "relativistic_average" (the terms apply to logit differences).
    The saturating G loss is minus D's fake term: the minimax generator descends on V(G, D).
    """

    name: str
    real: str
    fake: str
    gen: str
    kind: str
    alpha: float = 0.0

    @property
    def gen_real(self) -> str:
        """The non-saturating term on *real* samples, for a generator player that produces them
        too (BiGAN's encoder): D's fake term, so that the player's loss is D's with the labels
        swapped -- except for hinge, whose generator term is Wasserstein's -v on fakes and so +v
        on reals."""
        return "POS" if self.name == "hinge" else self.fake


def _f(name: str, real: str, fake: str) -> LossSpec:
    # f-GAN's non-saturating generator maximizes E_Q[g_f(v)], i.e. minimizes the REAL term on fakes.
    return LossSpec(name, real, fake, real, "f")


_LOSSES: dict[str, LossSpec] = {
    "kl": _f("kl", "NEG", "EXP_U_MINUS_1"),
    "reverse_kl": _f("reverse_kl", "EXP_NEG", "U_MINUS_1"),
    "pearson": _f("pearson", "NEG", "PEARSON_FAKE"),
    "neyman": _f("neyman", "EXPM1_NEG", "NEYMAN_FAKE"),
    "squared_hellinger": _f("squared_hellinger", "EXPM1_NEG", "EXPM1"),
    "jeffrey": _f("jeffrey", "NEG", "JEFFREY_FAKE"),
    "js": _f("js", "JS_REAL", "JS_FAKE"),
    "gan": _f("gan", "SOFTPLUS_NEG", "SOFTPLUS"),
    "total_variation": _f("total_variation", "TV_REAL", "TV_FAKE"),
    "wasserstein": LossSpec("wasserstein", "NEG", "POS", "NEG", "ipm"),
    "hinge": LossSpec("hinge", "HINGE_REAL", "HINGE_FAKE", "NEG", "margin"),
    "least_squares": LossSpec("least_squares", "HALF_SQ_U_MINUS_1", "HALF_SQ", "HALF_SQ_U_MINUS_1", "margin"),
    # Relativistic losses apply the gan terms to differences of logits (see pygan.losses).
    "relativistic": LossSpec("relativistic", "SOFTPLUS_NEG", "SOFTPLUS", "SOFTPLUS_NEG", "relativistic"),
    "relativistic_average": LossSpec(
        "relativistic_average", "SOFTPLUS_NEG", "SOFTPLUS", "SOFTPLUS_NEG", "relativistic_average"
    ),
}

LOSS_NAMES: tuple[str, ...] = F_DIVERGENCES + tuple(n for n in _LOSSES if n not in F_DIVERGENCES)


def loss_spec(loss: str, params: dict) -> LossSpec:
    """Resolve a loss name and its parameters, with errors that name what is wrong."""
    if not isinstance(loss, str) or loss not in LOSS_NAMES:
        raise ValueError(f"unknown loss {loss!r}; valid losses: {', '.join(LOSS_NAMES)}")
    extra = set(params) - ({"alpha"} if loss == "alpha" else set())
    if extra:
        raise TypeError(f"loss {loss!r} takes no parameter(s) {', '.join(sorted(extra))}"
                        + ("" if loss != "alpha" else "; it takes only alpha"))
    if loss != "alpha":
        return _LOSSES[loss]
    if "alpha" not in params:
        raise ValueError("loss 'alpha' needs its parameter: pass alpha=<float, not 0 or 1>")
    a = params["alpha"]
    if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a) or a in (0, 1):
        raise ValueError(f"alpha must be a finite number other than 0 and 1, got {a!r}")
    a = float(a)
    if a < 1.0:
        return LossSpec("alpha", "ALPHA_LT1_REAL", "ALPHA_LT1_FAKE", "ALPHA_LT1_REAL", "f", a)
    return LossSpec("alpha", "NEG", "ALPHA_GT1_FAKE", "NEG", "f", a)


def reference_term(name: str, u: Tensor, alpha: float = 0.0) -> Tensor:
    """The term ``name`` at ``u`` with plain PyTorch ops (differentiable by autograd)."""
    return REFERENCE[name](u, alpha)
