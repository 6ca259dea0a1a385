r"""The objective of a game as a composition of terms.

:class:`Objective` holds the adversarial loss between the two players (one fused kernel per
evaluation, :mod:`pygan.losses`), the gradient penalties on D (:mod:`pygan.penalties`), summed into
D's loss, and extra :class:`Term` s of either player's loss:

.. math::
    L_D = \ell_D(D(x), D(G(z))) + \sum_k \mathrm{penalty}_k + \sum_j w_j t_j, \qquad
    L_G = \ell_G(D(x), D(G(z))) + \sum_j w_j t_j.

An extra term is a function of what the step computed (:class:`StepTensors`): ProGAN's drift
penalty :math:`\epsilon E[D(x)^2]` on D, a reconstruction or feature term on G, or a user's own.

It decides which penalties take their gradient from the loss's own forward (those due on the real or
the fake batch) and which run D at their own points, and names each term's statistic. The engine
(:class:`pygan.GAN`) feeds it D's outputs; it never runs a network itself except through the critic
callable a penalty on its own points is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor

from ._ops.loss_terms import loss_spec
from ._validate import number
from .losses import discriminator_loss, generator_loss, joint_generator_loss, minimax_losses
from .penalties import KINDS as PENALTY_KINDS
from .penalties import GradientPenalty

__all__ = ["Objective", "StepTensors", "Term", "penalty_list"]

PLAYERS = ("generator", "discriminator")


@dataclass
class StepTensors:
    """What a step computed, as an extra term sees it: the real batch (None in a G step that took
    none), the fakes (G's output; attached to G in the generator's steps, detached in D's), the
    labels of a conditional GAN, D's outputs on both (``d_real`` None where the step ran none), and
    the generator player's other outputs by name (:class:`pygan.CycleGAN`'s ``"reconstruction"``
    and ``"identity"`` in the steps that train it; empty for a GAN)."""

    real: Optional[Tensor]
    fake: Tensor
    labels: Optional[Tensor]
    d_real: Optional[Tensor]
    d_fake: Tensor
    outputs: dict = field(default_factory=dict)


class Term:
    """An extra term of one player's loss, ``weight * fn(step)`` with ``step`` a
    :class:`StepTensors`; ``fn`` returns a scalar tensor that depends on the player's parameters
    through the step's tensors. ``name`` labels its statistic (default: ``fn``'s name).

    ``Term(lambda s: s.d_real.pow(2).mean(), player="discriminator", weight=1e-3, name="drift")`` is
    ProGAN's drift penalty."""

    def __init__(self, fn: Callable[[StepTensors], Tensor], *, player: str = "generator", weight: float = 1.0,
                 name: Optional[str] = None) -> None:
        if not callable(fn):
            raise TypeError(f"a Term's fn must be callable StepTensors -> scalar tensor, got {type(fn).__name__}")
        if player not in PLAYERS:
            raise ValueError(f"a Term's player must be one of {', '.join(PLAYERS)}, got {player!r}")
        self.fn, self.player, self.weight = fn, player, number("a Term's weight", weight)
        self.name = name or getattr(fn, "__name__", "term")
        if self.name == "<lambda>":
            self.name = "term"

    def __call__(self, step: StepTensors) -> Tensor:
        value = self.fn(step)
        if not isinstance(value, Tensor) or value.dim() != 0:
            what = f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"term {self.name!r} must return a scalar tensor (reduce it over the batch), got {what}")
        return self.weight * value

    def __repr__(self) -> str:
        return f"Term({self.name}, player={self.player!r}, weight={self.weight:g})"


def penalty_list(penalty: Any, backend: Optional[str]) -> tuple[GradientPenalty, ...]:
    """``penalty=`` as a tuple of GradientPenalty modules: None, a kind, kinds joined by "+"
    (``"r1+r2"``, each at its default weight), a GradientPenalty, or a list of kinds and modules."""
    if penalty is None:
        return ()
    items = list(penalty) if isinstance(penalty, (list, tuple)) else \
        penalty.split("+") if isinstance(penalty, str) else [penalty]
    out: list[GradientPenalty] = []
    for item in items:
        if isinstance(item, str):
            if item not in PENALTY_KINDS:
                raise ValueError(f"unknown penalty {item!r}; choose kinds of {PENALTY_KINDS} (several joined by "
                                 "'+', e.g. 'r1+r2'), GradientPenalty modules, or a list of them")
            item = GradientPenalty(item, backend=backend)
        elif not isinstance(item, GradientPenalty):
            raise TypeError(f"penalty must be None, a kind name, a GradientPenalty or a list of them, got "
                            f"{type(item).__name__}" + (" in the list" if len(items) > 1 else ""))
        if any(item is p for p in out):
            raise ValueError(f"penalty lists the same GradientPenalty ({item.name}) twice; its lazy call count "
                             "would advance twice per step: pass two modules")
        out.append(item)
    return tuple(out)


def _stat_names(penalties: Sequence[GradientPenalty]) -> list[Optional[str]]:
    """Each penalty's statistic, ``penalty_<name>`` (numbered when names repeat); none for a single
    penalty, whose value is the ``penalty`` statistic itself."""
    if len(penalties) < 2:
        return [None] * len(penalties)
    names = [f"penalty_{p.name}" for p in penalties]
    return [f"{n}_{names[:i].count(n) + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


class Objective:
    """The adversarial loss ``loss`` (with ``loss_params``; ``saturating`` for G's minimax loss;
    ``joint`` when the generator player moves both sides D compares, as in BiGAN) plus the
    penalties on D (anything :func:`penalty_list` takes), on the kernels of ``backend``."""

    def __init__(self, loss: str, loss_params: dict, *, saturating: bool = False, joint: bool = False,
                 penalty: Any = None, terms: Optional[Sequence[Term]] = None,
                 backend: Optional[str] = None) -> None:
        self.spec = loss_spec(loss, loss_params)  # an unknown loss or parameter fails here
        self.loss, self.params, self.saturating, self.joint = loss, dict(loss_params), bool(saturating), joint
        self.backend = backend
        self.penalties = penalty_list(penalty, backend)
        self.stat_names = _stat_names(self.penalties)
        terms = list(terms or [])
        bad = [type(t).__name__ for t in terms if not isinstance(t, Term)]
        if bad:
            raise TypeError(f"terms must be pygan.objective.Term objects, got {', '.join(bad)}")
        names = [t.name for t in terms]
        if len(set(names)) != len(names) or set(names) & {"d_loss", "g_loss", "penalty", "divergence"}:
            raise ValueError(f"terms need distinct names other than the losses' (they name statistics), got {names}")
        self.terms = tuple(terms)

    @property
    def relativistic(self) -> bool:
        return self.spec.kind in ("relativistic", "relativistic_average")

    @property
    def g_needs_real(self) -> bool:
        """Whether G's loss reads D's outputs on real data (relativistic losses, joint players)."""
        return self.relativistic or self.joint

    @property
    def has_divergence(self) -> bool:
        """Whether -L_D is a variational divergence bound (f-divergences, wasserstein)."""
        return self.spec.kind in ("f", "ipm")

    # The adversarial term -------------------------------------------------------------------

    def d_loss(self, v_r: Tensor, v_f: Tensor) -> Tensor:
        return discriminator_loss(v_r, v_f, self.loss, backend=self.backend, **self.params)

    def g_loss(self, v_r: Optional[Tensor], v_f: Tensor) -> Tensor:
        if self.joint:
            return joint_generator_loss(v_r, v_f, self.loss, saturating=self.saturating, backend=self.backend,
                                        **self.params)
        return generator_loss(v_f, self.loss, saturating=self.saturating, real_logits=v_r, backend=self.backend,
                              **self.params)

    def minimax(self, v_r: Tensor, v_f: Tensor):
        """Both players' losses and upstream gradients from one kernel call (the fused step)."""
        return minimax_losses(v_r, v_f, self.loss, saturating=self.saturating, joint=self.joint,
                              backend=self.backend, **self.params)

    # The penalties --------------------------------------------------------------------------

    def shared_sides(self) -> frozenset:
        """The batches ("real", "fake") on which a penalty due at this D step takes its gradient from
        the loss's own forward, so that D runs once per batch."""
        return frozenset(p.target for p in self.penalties if p.due and p.target in ("real", "fake"))

    def penalty(self, critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, shared: frozenset,
                v_r: Tensor, v_f: Tensor, *, scaler=None, generator: Optional[torch.Generator] = None,
                input_grads: Optional[dict[str, Tensor]] = None) -> tuple[Optional[Tensor], dict[str, Tensor]]:
        """The sum of the penalties (None without any) and, with several, each one's value. Those on
        the ``shared`` batches differentiate D's outputs ``v_r`` / ``v_f`` of ``real`` / ``fake``, or
        take the input gradient the forward already formed (``input_grads[side]``); the others run
        ``critic`` at their own points (drawn with ``generator``)."""
        total, parts = None, {}
        for p, stat in zip(self.penalties, self.stat_names):
            if p.due and p.target in shared:
                on_real = p.target == "real"
                if input_grads:
                    value = p.from_gradient(input_grads[p.target])
                else:
                    value = p.from_outputs(v_r if on_real else v_f, real if on_real else fake, scaler=scaler)
            else:  # its own forward at its own points (or a lazy off-step's zero); it takes fake as it needs
                value = p(critic, real, fake, scaler=scaler, generator=generator)
            total = value if total is None else total + value
            if stat is not None:
                parts[stat] = value.detach()
        return total, parts

    def extra(self, player: str, *step: Optional[Tensor]) -> tuple[Optional[Tensor], dict[str, Tensor]]:
        """The sum of ``player``'s extra terms (None without any) and each one's value, on the
        step's tensors ``step`` (the fields of :class:`StepTensors`, in order; gathered only when a
        term reads them, the steps call this on every update)."""
        total, parts, tensors = None, {}, None
        for t in self.terms:
            if t.player == player:
                if tensors is None:
                    tensors = StepTensors(*step)
                value = t(tensors)
                total = value if total is None else total + value
                parts[t.name] = value.detach()
        return total, parts

    def pattern(self, d_steps: int) -> tuple:
        """Which penalties apply at each of the next ``d_steps`` D steps (a captured CUDA graph
        replays one pattern)."""
        return tuple(tuple((p.calls + i) % p.lazy == 0 for i in range(d_steps)) for p in self.penalties)

    def __repr__(self) -> str:
        options = [f"loss={self.loss!r}"] + [f"{k}={v!r}" for k, v in self.params.items()]
        if self.penalties:
            shown = [f"{p.name}(weight={p.weight:g}" + (f", lazy={p.lazy}" if p.lazy > 1 else "") + ")"
                     for p in self.penalties]
            options.append("penalty=" + (shown[0] if len(shown) == 1 else f"[{', '.join(shown)}]"))
        if self.terms:
            options.append(f"terms={list(self.terms)!r}")
        return ", ".join(options)
