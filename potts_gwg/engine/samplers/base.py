"""What every sampler shares: the chain state, the step report and the kernel interface.

In the style of BlackJAX: a sampler is a small object holding only its settings;
``init(model, x0)`` builds the state, ``step(model, state, generator)`` advances every chain
by one kernel application and returns the new state with a :class:`StepInfo`. A step never
modifies the state it is given.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from ..energies import EnergyModel, LocalFieldEnergy


@dataclass
class ChainState:
    """B chains: the states and what the kernels cache about them.

    ``log_prob`` is kept current by every kernel (exactly, or by exact differences on the
    local-field path), so diagnostics get f(x) for free. The cached quantities belong to the
    model's current parameters: after changing them (e.g. a PCD update), rebuild the state
    with ``sampler.init(model, state.x)``. A kernel that does not maintain a cache drops it
    (sets it to None) and a kernel that needs a missing one computes it.
    """

    x: Tensor                     # (B, n_sites) long: the current states
    log_prob: Tensor              # (B,) f(x)
    grad: Tensor | None = None    # ∇f at the relaxed x, (B, D) or (B, L, q): generic GWG
    fields: Tensor | None = None  # (B, L, q) local fields: LocalFieldEnergy path
    site_log_mass: Tensor | None = None  # (B, n_sites) per-site GWG proposal mass at x
    position: int = 0             # next site of a systematic Gibbs scan


@dataclass
class StepInfo:
    """What one step did, per chain."""

    accepted: Tensor       # (B,) bool: proposal accepted (Gibbs: always)
    sites_changed: Tensor  # (B,) long: number of sites whose value changed

    @property
    def acceptance_rate(self) -> Tensor:
        """Fraction of chains that accepted, a 0-d tensor (no device sync)."""
        return self.accepted.float().mean()


class Sampler(ABC):
    """A Markov kernel over the states of an :class:`EnergyModel`, batched over chains.

    ``local_fields=True`` (the default) makes the kernel use a model's local fields when
    it is a :class:`LocalFieldEnergy` (the Potts fast path); ``False`` forces the generic
    path that evaluates f (and its gradient) on full states, as in the GWG paper.
    """

    def __init__(self, local_fields: bool = True):
        self.local_fields = local_fields

    def uses_fields(self, model: EnergyModel) -> bool:
        """Whether this kernel takes the local-field path on ``model``."""
        return self.local_fields and isinstance(model, LocalFieldEnergy)

    def init(self, model: EnergyModel, x0: Tensor) -> ChainState:
        """Validate ``x0`` (the shape contract of ``model``) and build the chain state."""
        x = model.validate_state(x0)
        with torch.no_grad():
            if self.uses_fields(model):  # f from F: one pass over the couplings, not two
                fields = model.local_fields(x)
                return ChainState(x=x, log_prob=model.log_prob_from_fields(x, fields),
                                  fields=fields)
            return ChainState(x=x, log_prob=model.log_prob_indices(x))

    @abstractmethod
    def step(self, model: EnergyModel, state: ChainState,
             generator: torch.Generator) -> tuple[ChainState, StepInfo]:
        """Advance every chain by one kernel application."""

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({settings})"
