"""Random-walk Metropolis: the uninformed single-site baseline."""

from __future__ import annotations

import dataclasses

import torch

from ..energies import EnergyModel
from ..mh import metropolis_hastings, select
from .base import ChainState, Sampler, StepInfo


class MetropolisSampler(Sampler):
    """Propose a uniform site and a uniform new value for it; accept with min(1, e^Δf).

    The proposal is symmetric, so the MH correction has no proposal terms. Δf comes from the
    local fields on a :class:`LocalFieldEnergy`, otherwise from one evaluation of f at x'.
    """

    @torch.no_grad()
    def step(self, model: EnergyModel, state: ChainState,
             generator: torch.Generator) -> tuple[ChainState, StepInfo]:
        x = state.x
        batch, n_sites = x.shape
        chains = torch.arange(batch, device=x.device)
        sites = torch.randint(n_sites, (batch,), generator=generator, device=x.device)
        shift = torch.randint(1, model.n_states, (batch,), generator=generator, device=x.device)
        old = x[chains, sites]
        new = (old + shift) % model.n_states
        new_x = x.clone()
        new_x[chains, sites] = new
        fast = self.uses_fields(model)
        if fast and state.fields is None:
            state = dataclasses.replace(state, fields=model.local_fields(x))
        if fast:
            at_site = state.fields[chains, sites]
            delta_f = (at_site.gather(1, new.unsqueeze(1))
                       - at_site.gather(1, old.unsqueeze(1))).squeeze(1)
            proposal = ChainState(x=new_x, log_prob=state.log_prob + delta_f,
                                  fields=model.update_fields(state.fields, sites, old, new),
                                  position=state.position)
        else:
            log_prob = model.log_prob_indices(new_x)
            delta_f = log_prob - state.log_prob
            proposal = ChainState(x=new_x, log_prob=log_prob, position=state.position)
        accept = metropolis_hastings(delta_f, 0.0, 0.0, generator)
        return select(accept, proposal, state), StepInfo(accepted=accept,
                                                         sites_changed=accept.long())
