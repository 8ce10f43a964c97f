"""Single-site Gibbs sampling, systematic or random scan."""

from __future__ import annotations

import torch

from ..draws import draw_from_logits
from ..energies import EnergyModel
from .base import ChainState, Sampler, StepInfo


class GibbsSampler(Sampler):
    """Each step redraws one site per chain from its exact conditional p(x_i | x_−i).

    ``scan="systematic"`` visits sites 0, 1, …, n−1, 0, … (the same site in every chain, so
    n steps are one sweep); ``"random"`` draws each chain's site uniformly.
    On a :class:`LocalFieldEnergy` the conditional logits are the local fields F[c, i, :]
    (O(q) to read, O(L·q) to update after a change); otherwise f is evaluated on the q
    candidate states of each chain in one batch.
    """

    def __init__(self, scan: str = "systematic", local_fields: bool = True):
        if scan not in ("systematic", "random"):
            raise ValueError(f"scan must be 'systematic' or 'random', got {scan!r}")
        super().__init__(local_fields)
        self.scan = scan

    @torch.no_grad()
    def step(self, model: EnergyModel, state: ChainState,
             generator: torch.Generator) -> tuple[ChainState, StepInfo]:
        x = state.x
        batch, n_sites = x.shape
        chains = torch.arange(batch, device=x.device)
        if self.scan == "systematic":
            sites = torch.full((batch,), state.position % n_sites, device=x.device)
        else:
            sites = torch.randint(n_sites, (batch,), generator=generator, device=x.device)
        fast = self.uses_fields(model)
        fields = state.fields if fast else None
        if fast and fields is None:
            fields = model.local_fields(x)
        # Conditional logits over the site's values: local fields, or f at each candidate.
        logits = fields[chains, sites] if fast else model.site_log_probs(x, sites)
        new = draw_from_logits(logits, 1, generator).squeeze(1)
        old = x[chains, sites]
        new_x = x.clone()
        new_x[chains, sites] = new
        picked = logits.gather(1, new.unsqueeze(1)).squeeze(1)
        if fast:
            log_prob = state.log_prob + picked - logits.gather(1, old.unsqueeze(1)).squeeze(1)
            fields = model.update_fields(fields, sites, old, new)
        else:
            log_prob = picked
        changed = (new != old).long()
        new_state = ChainState(x=new_x, log_prob=log_prob, fields=fields,
                               position=(state.position + 1) % n_sites)
        return new_state, StepInfo(accepted=torch.ones_like(changed, dtype=torch.bool),
                                   sites_changed=changed)
