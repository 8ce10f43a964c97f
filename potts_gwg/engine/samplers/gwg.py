"""Gibbs-With-Gradients (Grathwohl et al., 2021): MH with a gradient-informed proposal.

The neighbourhood of x is every single-site change (i, a), a ≠ x_i, flattened to an index
k = i·n_states + a. The proposal is q(k | x) = softmax(d̃(x) / 2) with the first-order estimate
of f(x') − f(x) from ∇f at the relaxed x:

* binary:      d̃[i, 1 − x_i] = (1 − 2x_i) ∂f/∂x_i          (d̃ = −(2x − 1) ⊙ ∇f)
* categorical: d̃[i, a]       = ∂f/∂x[i, a] − ∂f/∂x[i, x_i]  (one softmax over all L·(q−1))

and the MH correction uses the reverse proposal q(x | x') computed at x'. On a
:class:`LocalFieldEnergy` (Potts), d̃ = F[i, a] − F[i, x_i] is the exact difference and F is
updated incrementally; no energy or gradient is evaluated while stepping.

The proposal is drawn in two stages, site then value, from the per-site masses
log Σ_a exp(d̃[i, a] / 2) (``ChainState.site_log_mass``). Those are computed at x' for the
reverse probability anyway and kept when the move is accepted, so the forward draw reads
only the chosen site's row: one full pass over the (L, q) differences per step, not two.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ...settings import integer
from ..draws import draw_from_logits, site_log_masses
from ..energies import EnergyModel
from ..mh import metropolis_hastings, select
from .base import ChainState, Sampler, StepInfo

TEMPERATURE = 2.0  # q ∝ exp(d̃ / 2): the locally balanced choice of Zanella (2020)


class GWGSampler(Sampler):
    """One GWG step proposes ``n_flips`` changes and accepts or rejects them together.

    ``n_flips > 1`` (binary models only) is the multi-flip variant of the GWG code release:
    draw n_flips indices with replacement from q(· | x), flip each drawn site once, and
    correct with the probability of the same draws under q(· | x'); the map
    (x, draws) → (x', draws) is an involution, so the chain keeps p invariant.
    """

    def __init__(self, n_flips: int = 1, local_fields: bool = True):
        super().__init__(local_fields)
        self.n_flips = integer("n_flips", n_flips, least=1)  # (2.0 failed in its first step)

    def uses_fields(self, model: EnergyModel) -> bool:
        return self.n_flips == 1 and super().uses_fields(model)

    def init(self, model: EnergyModel, x0: Tensor) -> ChainState:
        if self.n_flips > 1 and model.kind != "binary":
            raise ValueError(f"n_flips = {self.n_flips} needs a binary model; "
                             f"{type(model).__name__} is {model.kind}")
        return self._prepared(model, super().init(model, x0))

    def _prepared(self, model: EnergyModel, state: ChainState) -> ChainState:
        """The state with what this kernel reads: F or ∇f, and the per-site masses."""
        if self.uses_fields(model) and state.fields is None:
            state = dataclasses.replace(state, fields=model.local_fields(state.x))
        if not self.uses_fields(model) and state.grad is None:
            log_prob, grad = model.log_prob_and_grad(state.x)
            state = dataclasses.replace(state, log_prob=log_prob, grad=grad)
        if state.site_log_mass is None:
            with torch.no_grad():
                masses = site_log_masses(self.differences(model, state), TEMPERATURE)
            state = dataclasses.replace(state, site_log_mass=masses)
        return state

    def _rows(self, model: EnergyModel, state: ChainState) -> tuple[Tensor, bool]:
        """What d̃ is computed from, per site: F or ∇f; and whether it is a binary ∇f."""
        if self.uses_fields(model):
            return state.fields, False
        return state.grad, model.kind == "binary"

    @staticmethod
    def _first_order(rows: Tensor, x: Tensor, binary: bool) -> Tensor:
        """d̃ ``(B, m, q)`` from rows ``(B, m, q)`` (binary ∇f: ``(B, m)``) at values ``x (B, m)``;
        −inf at a = x_i, which is no change."""
        x = x.unsqueeze(-1)
        if binary:
            d = rows.unsqueeze(-1) * (torch.arange(2, device=x.device, dtype=rows.dtype) - x)
        else:
            d = rows - rows.gather(2, x)
        return d.scatter_(2, x, float("-inf"))

    def differences(self, model: EnergyModel, state: ChainState) -> Tensor:
        """d̃(x) ``(B, n_sites, n_states)``: estimated f(x') − f(x) per change; −inf at a = x_i."""
        rows, binary = self._rows(model, state)
        return self._first_order(rows, state.x, binary)

    def proposal_log_probs(self, model: EnergyModel, state: ChainState) -> Tensor:
        """log q(k | x) ``(B, n_sites · n_states)`` over flattened changes k = i·q + a."""
        d = self.differences(model, state).flatten(1)
        return torch.log_softmax(d / TEMPERATURE, dim=1)

    def step(self, model: EnergyModel, state: ChainState,
             generator: torch.Generator) -> tuple[ChainState, StepInfo]:
        state = self._prepared(model, state)
        fast = self.uses_fields(model)
        batch, q, n = state.x.shape[0], model.n_states, self.n_flips
        with torch.no_grad():
            # Forward: site from the cached per-site masses, then value within the site.
            sites = draw_from_logits(state.site_log_mass, n, generator)          # (B, n)
            rows, binary = self._rows(model, state)
            index = sites if binary else sites.unsqueeze(-1).expand(batch, n, q)
            at_sites = self._first_order(rows.gather(1, index), state.x.gather(1, sites),
                                         binary)                                 # (B, n, q)
            values = draw_from_logits(at_sites.flatten(0, 1) / TEMPERATURE, 1,
                                      generator).view(batch, n)
            picked = at_sites.gather(2, values.unsqueeze(-1)).squeeze(-1)        # (B, n)
            log_q_forward = ((picked / TEMPERATURE).sum(1)
                             - n * state.site_log_mass.logsumexp(1))
            old = state.x.gather(1, sites)
            new_x = state.x.scatter(1, sites, values)
            if fast:  # exact Δf = d̃ of the change; F moves by two rows of the couplings
                delta_f = picked.squeeze(1)
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
            # Reverse: the same draws, each undoing its change, under q(· | x').
            d_reverse = self.differences(model, proposal)
            proposal.site_log_mass = site_log_masses(d_reverse, TEMPERATURE)
            undo = d_reverse.flatten(1).gather(1, sites * q + old)
            log_q_reverse = ((undo / TEMPERATURE).sum(1)
                             - n * proposal.site_log_mass.logsumexp(1))
            accept = metropolis_hastings(delta_f, log_q_reverse, log_q_forward, generator)
            changed = (new_x != state.x).sum(1) * accept
        return select(accept, proposal, state), StepInfo(accepted=accept, sites_changed=changed)
