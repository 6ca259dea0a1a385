"""The players of a game: each side's networks with everything that trains them.

A :class:`Player` owns one module (G; G and E together in BiGAN; D), the parameters it trains, its
optimizer, its fp16 loss scaler, its DDP wrapper and, for a generator side, its EMA copy. The
engine (:class:`pygan.GAN`) composes two of them with an objective (:mod:`pygan.objective`) and a
schedule (:mod:`pygan.schedule`); AMP, DDP, EMA, checkpoints and CUDA-graph capture are handled here,
once per player, never per model.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .ema import EMA
from .penalties import _unwrap

__all__ = ["Player"]


def _optimizer(given, params: list[Tensor], name: str, default: Callable):
    if given is None:
        return default(params)
    if isinstance(given, torch.optim.Optimizer):
        return given
    if callable(given):
        return given(params)
    raise TypeError(f"{name} must be a torch.optim.Optimizer, a callable params -> optimizer, or None; "
                    f"got {type(given).__name__}")


class Player:
    """One side of the game.

    Args:
        name: the side's name in messages and checkpoints ("generator", "discriminator").
        module: its networks, as one module (a DDP-wrapped one is unwrapped for ``module``).
        optimizer: an optimizer, a callable ``params -> optimizer``, or None for ``default(params)``.
        option: the constructor argument ``optimizer`` came from (for messages).
        default: the default optimizer's factory.
        distributed: wrap the module in DDP (``net`` is then the wrapper, ``module`` the network).
        fp16: keep a ``GradScaler`` (AMP with float16).
        capture: the step is captured as a CUDA graph (the optimizer must be capturable).
        ema: None, a decay, or an :class:`pygan.ema.EMA` of the module.
        backend: the kernel backend of the EMA.
    """

    def __init__(self, name: str, module: nn.Module, optimizer: Any, *, option: str, default: Callable,
                 device: torch.device, distributed: bool = False, fp16: bool = False, capture: bool = False,
                 ema: Union[None, float, EMA] = None, backend: Optional[str] = None) -> None:
        self.name = name
        self.module = _unwrap(module)
        self.net = self._ddp(module, device) if distributed else module
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        self.optimizer = _optimizer(optimizer, self.params, option, default)
        if capture and any(g.get("capturable") is False for g in self.optimizer.param_groups):
            raise ValueError(f"capture=True needs a capturable {option} (e.g. Adam(..., capturable=True))")
        self.scaler = torch.amp.GradScaler(device.type) if fp16 else None
        if isinstance(ema, EMA) or ema is None:
            self.ema: Optional[EMA] = ema
        else:
            self.ema = EMA(self.module, float(ema), backend=backend)

    @staticmethod
    def _ddp(module: nn.Module, device: torch.device) -> nn.Module:
        if isinstance(module, nn.parallel.DistributedDataParallel):
            return module
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: Tensor) -> None:
        """The gradient of ``loss`` (scaled under fp16) for this player's parameters only."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward(inputs=self.params)

    def loss_scale(self, device: torch.device) -> Optional[Tensor]:
        """The fp16 loss scale as a device scalar (for upstream gradients fed to backward by hand)."""
        return None if self.scaler is None else self.scaler.scale(torch.ones((), device=device))

    def step(self, skip: bool = False) -> None:
        """The optimizer's update (through the scaler under fp16), or, with ``skip``, none: the
        gradients are dropped and the weights and moments stay as they were."""
        if skip:
            self.zero_grad()
            return
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()

    def update_average(self) -> None:
        if self.ema is not None:
            self.ema.update(self.module)

    # Checkpoints: the module's weights under the player's name, the rest under fixed prefixes.
    def state_dict(self, prefix: str) -> dict[str, Any]:
        state = {self.name: self.module.state_dict(), f"{prefix}_optimizer": self.optimizer.state_dict()}
        if self.scaler is not None:
            state[f"{prefix}_scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], prefix: str) -> None:
        self.module.load_state_dict(state[self.name])
        self.optimizer.load_state_dict(state[f"{prefix}_optimizer"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state[f"{prefix}_scaler"])

    def check_state(self, state: dict[str, Any], prefix: str) -> list[str]:
        """What ``state`` lacks, or holds that this player has no place for (scaler), as messages."""
        problems = [k for k in (self.name, f"{prefix}_optimizer") if k not in state]
        key = f"{prefix}_scaler"
        if (key in state) != (self.scaler is not None):
            problems.append(f"{key} ({'in the checkpoint' if key in state else 'in this GAN'} only)")
        return problems

    def finite(self) -> Sequence[Tensor]:
        """The floating-point tensors a divergence check reads: weights, and the EMA's."""
        modules = [self.module] + ([self.ema.module] if self.ema is not None else [])
        return [t for m in modules for t in m.parameters() if t.is_floating_point()]
