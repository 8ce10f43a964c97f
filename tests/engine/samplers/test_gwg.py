"""The GWG kernel's proposal (potts_gwg/engine/samplers/gwg.py); its stationary distribution
is checked against exact enumeration in tests/engine/test_exactness.py."""

from __future__ import annotations

import pytest
import torch

from potts_gwg.engine import GWGSampler
from potts_gwg.engine.samplers import gwg

from ..exact import frequency_tolerance, random_ising, random_potts

DRAWS = 200_000


@pytest.mark.parametrize("model_name, local_fields", [
    ("potts", True), ("potts", False), ("ising", True)])
def test_gwg_draws_changes_with_its_proposal_probabilities(monkeypatch, model_name,
                                                           local_fields):
    # With every proposal accepted, the change each chain made is a draw from q(· | x0).
    monkeypatch.setattr(gwg, "metropolis_hastings",
                        lambda delta_f, *rest: torch.ones_like(delta_f, dtype=torch.bool))
    model = random_potts(coupling_scale=1.5) if model_name == "potts" else random_ising()
    sampler = GWGSampler(local_fields=local_fields)
    x0 = torch.randint(model.n_states, (1, model.n_sites),
                       generator=torch.Generator().manual_seed(3))
    state = sampler.init(model, x0.expand(DRAWS, -1).contiguous())
    expected = sampler.proposal_log_probs(model, state)[0].exp()
    moved, _ = sampler.step(model, state, torch.Generator().manual_seed(4))
    site = (moved.x != x0).long().argmax(1)
    assert torch.all((moved.x != x0).sum(1) == 1)
    changes = site * model.n_states + moved.x.gather(1, site.unsqueeze(1)).squeeze(1)
    counts = torch.bincount(changes, minlength=len(expected)).double() / DRAWS
    assert float(counts[expected == 0].sum()) == 0
    tolerance = frequency_tolerance(DRAWS, int((expected > 0).sum()))
    assert 0.5 * float((counts - expected).abs().sum()) < tolerance


@pytest.mark.parametrize("n_flips, error", [(0, ValueError), (2.0, TypeError),
                                            (True, TypeError)])
def test_n_flips_is_a_positive_integer(n_flips, error):
    """2.0 and True were taken and failed inside the first step."""
    with pytest.raises(error, match="n_flips"):
        GWGSampler(n_flips=n_flips)
