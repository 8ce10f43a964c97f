"""Gibbs-With-Gradients (Grathwohl et al., 2021): MH with a gradient-informed proposal.

The neighbourhood of x is every single-site change (i, a), a ≠ x_i, flattened to an index
k = i·n_states + a. The proposal is q(k | x) = softmax(d̃(x) / 2) with the first-order estimate
of f(x') − f(x) from ∇f at the relaxed x:

* binary:      d̃[i, 1 − x_i] = (1 − 2x_i) ∂f/∂x_i          (d̃ = −(2x − 1) ⊙ ∇f)
* categorical: d̃[i, a]       = ∂f/∂x[i, a] − ∂f/∂x[i, x_i]  (one softmax over all L·(q−1))

and the MH correction uses the reverse proposal q(x | x') computed at x'. On a
:class:`LocalFieldEnergy` (Potts), d̃ = F[i, a] − F[i, x_i] is the exact difference and F is
updated incrementally; no energy or gradient is evaluated while stepping.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ..energies import EnergyModel
from ..draws import draw_site_changes
from ..mh import metropolis_hastings, select
from .base import ChainState, Sampler, StepInfo


class GWGSampler(Sampler):
    """One GWG step proposes ``n_flips`` changes and accepts or rejects them together.

    ``n_flips > 1`` (binary models only) is the multi-flip variant of the GWG code release:
    draw n_flips indices with replacement from q(· | x), flip each drawn site once, and
    correct with the probability of the same draws under q(· | x'); the map
    (x, draws) → (x', draws) is an involution, so the chain keeps p invariant.
    """

    def __init__(self, n_flips: int = 1, local_fields: bool = True):
        if n_flips < 1:
            raise ValueError(f"n_flips must be >= 1, got {n_flips}")
        super().__init__(local_fields)
        self.n_flips = n_flips

    def init(self, model: EnergyModel, x0: Tensor) -> ChainState:
        if self.n_flips > 1 and model.kind != "binary":
            raise ValueError(f"n_flips = {self.n_flips} needs a binary model; "
                             f"{type(model).__name__} is {model.kind}")
        state = super().init(model, x0)
        return state if self.uses_fields(model) else self._with_grad(model, state)

    def uses_fields(self, model: EnergyModel) -> bool:
        return self.n_flips == 1 and super().uses_fields(model)

    @staticmethod
    def _with_grad(model: EnergyModel, state: ChainState) -> ChainState:
        log_prob, grad = model.log_prob_and_grad(state.x)
        return dataclasses.replace(state, log_prob=log_prob, grad=grad)

    def differences(self, model: EnergyModel, state: ChainState) -> Tensor:
        """d̃(x) ``(B, n_sites, n_states)``: estimated f(x') − f(x) per change; −inf at a = x_i."""
        x = state.x.unsqueeze(-1)
        if self.uses_fields(model):
            d = state.fields - state.fields.gather(2, x)
        elif model.kind == "binary":
            values = torch.arange(2, device=x.device, dtype=state.grad.dtype)
            d = state.grad.unsqueeze(-1) * (values - x)
        else:
            d = state.grad - state.grad.gather(2, x)
        return d.scatter_(2, x, float("-inf"))

    def proposal_log_probs(self, model: EnergyModel, state: ChainState) -> Tensor:
        """log q(k | x) ``(B, n_sites · n_states)`` over flattened changes k = i·q + a."""
        return torch.log_softmax(self.differences(model, state).flatten(1) / 2, dim=1)

    def step(self, model: EnergyModel, state: ChainState,
             generator: torch.Generator) -> tuple[ChainState, StepInfo]:
        fast = self.uses_fields(model)
        if fast and state.fields is None:
            state = dataclasses.replace(state, fields=model.local_fields(state.x))
        if not fast and state.grad is None:
            state = self._with_grad(model, state)
        q = model.n_states
        with torch.no_grad():
            d = self.differences(model, state)
            picks, log_q_forward = draw_site_changes(d / 2, self.n_flips, generator)
            sites, values = picks.div(q, rounding_mode="floor"), picks.remainder(q)
            old = state.x.gather(1, sites)
            new_x = state.x.scatter(1, sites, values)
            if fast:  # exact Δf = d̃ of the change; F moves by two rows of the couplings
                delta_f = d.flatten(1).gather(1, picks).squeeze(1)
                proposal = ChainState(
                    x=new_x, log_prob=state.log_prob + delta_f, position=state.position,
                    fields=model.update_fields(state.fields, sites[:, 0], old[:, 0],
                                               values[:, 0]))
        if not fast:
            log_prob, grad = model.log_prob_and_grad(new_x)
            delta_f = log_prob - state.log_prob
            proposal = ChainState(x=new_x, log_prob=log_prob, grad=grad,
                                  position=state.position)
        with torch.no_grad():
            # Reverse proposal: the same draws, each undoing its change, under q(· | x').
            d_reverse = self.differences(model, proposal).flatten(1) / 2
            log_q_reverse = (d_reverse.gather(1, sites * q + old).sum(1)
                             - self.n_flips * d_reverse.logsumexp(1))
            accept = metropolis_hastings(delta_f, log_q_reverse, log_q_forward.sum(1), generator)
            changed = (new_x != state.x).sum(1) * accept
        return select(accept, proposal, state), StepInfo(accepted=accept, sites_changed=changed)
