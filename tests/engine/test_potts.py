"""The Potts fast path: energy, local fields, GWG proposals and incremental field updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from potts_gwg.engine import GibbsSampler, GWGSampler, MetropolisSampler, PottsEnergy
from potts_gwg.io.model_file import PottsModel

from .exact import all_states, random_potts


def reference_log_prob(h: torch.Tensor, J: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Σ_i h[i, x_i] + Σ_{i<j} J[i, j, x_i, x_j], by loops (the model-file convention)."""
    length = h.shape[0]
    values = []
    for state in x.tolist():
        total = sum(h[i, state[i]] for i in range(length))
        total = total + sum(J[i, j, state[i], state[j]] for i in range(length)
                            for j in range(i + 1, length))
        values.append(total)
    return torch.stack(values)


def test_energy_matches_the_model_file_convention_on_all_states():
    model = random_potts(length=4, n_states=3)
    states = all_states(model)
    expected = reference_log_prob(model.h, model.J, states)
    torch.testing.assert_close(model(states), expected, rtol=0, atol=1e-12)
    one_hot = torch.nn.functional.one_hot(states, 3).double()
    torch.testing.assert_close(model(one_hot), expected, rtol=0, atol=1e-12)


def test_from_model_keeps_h_and_J():
    energy = random_potts(length=5, n_states=4, dtype=torch.float32)
    file_model = PottsModel(h=energy.h.numpy(), J=energy.J.numpy().copy(), alphabet="ACDE")
    loaded = PottsEnergy.from_model(file_model)
    assert loaded.dtype == torch.float32 and loaded.n_sites == 5 and loaded.n_states == 4
    np.testing.assert_array_equal(loaded.J.numpy(), file_model.J)
    np.testing.assert_array_equal(loaded.h.numpy(), file_model.h)
    assert PottsEnergy.from_model(file_model, dtype=torch.float64).dtype == torch.float64


def test_local_fields_are_the_gradient_of_the_relaxed_energy():
    model = random_potts(length=6, n_states=5)
    x = torch.randint(5, (7, 6), generator=torch.Generator().manual_seed(0))
    _, grad = model.log_prob_and_grad(x)
    torch.testing.assert_close(model.local_fields(x), grad, rtol=0, atol=1e-12)


def test_project_restores_symmetric_couplings_with_zero_diagonal_blocks():
    """What a trainer's optimiser step may break (tests/ebm/test_trainer.py trains one)."""
    model = random_potts(length=4, n_states=3)
    expected = model.J.clone()
    noise = torch.randn(model.couplings.shape, generator=torch.Generator().manual_seed(1),
                        dtype=model.couplings.dtype)
    with torch.no_grad():
        model.couplings += noise                  # asymmetric, diagonal blocks non-zero
        model.project_()
    J = model.J
    assert torch.equal(J, J.permute(1, 0, 3, 2))
    assert float(J.diagonal(dim1=0, dim2=1).abs().max()) == 0
    off_diagonal = ~torch.eye(4, dtype=torch.bool)[:, :, None, None].expand_as(J)
    symmetric_noise = 0.5 * (noise + noise.T)
    torch.testing.assert_close(
        J[off_diagonal], (expected + symmetric_noise.view(4, 3, 4, 3).permute(0, 2, 1, 3))
        [off_diagonal], rtol=0, atol=1e-12)


@pytest.mark.parametrize("J_change, message", [
    (lambda J: J.__setitem__((0, 1, 0, 1), J[0, 1, 0, 1] + 1), "not symmetric"),
    (lambda J: J.__setitem__((2, 2, 0, 0), 1.0), "diagonal"),
    (lambda J: J.__setitem__((0, 1, 0, 1), float("nan")), "finite"),
    (lambda J: J.__setitem__((0, 1, 0, 1), float("inf")), "finite"),
])
def test_invalid_couplings_are_refused(J_change, message):
    model = random_potts(length=4, n_states=3)
    J = model.J.clone()
    J_change(J)
    with pytest.raises(ValueError, match=message):
        PottsEnergy(model.h, J)
    with pytest.raises(ValueError, match="shape"):
        PottsEnergy(model.h, J[:3])
    with pytest.raises(ValueError, match="finite"):  # a NaN field froze GWG's chains
        PottsEnergy(model.h * float("nan"), model.J)


def brute_force_log_proposal(model: PottsEnergy, x: torch.Tensor) -> torch.Tensor:
    """log softmax(Δf/2) over all single-site changes, Δf from full energies; −inf at a = x_i."""
    batch, length = x.shape
    q = model.n_states
    log_prob = model(x)
    delta = torch.full((batch, length, q), float("-inf"), dtype=log_prob.dtype)
    for i in range(length):
        for a in range(q):
            changed = x.clone()
            changed[:, i] = a
            keep = x[:, i] != a
            delta[keep, i, a] = (model(changed) - log_prob)[keep]
    return torch.log_softmax(delta.flatten(1) / 2, dim=1)


@pytest.mark.parametrize("local_fields", [True, False])
def test_gwg_proposal_is_softmax_of_half_the_exact_energy_differences(local_fields):
    # For a Potts model with J[i, i] = 0 the first-order estimate is exact, on either path.
    model = random_potts(length=6, n_states=4, coupling_scale=1.0)
    x = torch.randint(4, (16, 6), generator=torch.Generator().manual_seed(1))
    sampler = GWGSampler(local_fields=local_fields)
    state = sampler.init(model, x)
    assert (state.fields is not None) == local_fields
    got = sampler.proposal_log_probs(model, state)
    expected = brute_force_log_proposal(model, x)
    assert torch.equal(torch.isinf(got), torch.isinf(expected))
    finite = torch.isfinite(expected)
    torch.testing.assert_close(got[finite], expected[finite], rtol=0, atol=1e-10)


def field_drift_bound(model: PottsEnergy, fields: torch.Tensor, steps: int) -> float:
    """Worst-case float rounding of ``steps`` incremental updates F += G[new] − G[old].

    Each update rounds the row difference (≤ u·2·max|J|) and the sum (≤ u·max|F|), with
    u = eps/2 the unit roundoff, so |F_incremental − F_exact| ≤ steps · u · (max|F| + 2 max|J|)
    (+ the rounding of F_exact itself, covered by one more step). float32, 10⁴ steps,
    |F| ≈ 5: ≈ 4·10⁻³, while the drift seen is ~2·10⁻⁵; float64: ≈ 10⁻¹¹ (seen ~4·10⁻¹⁴).
    """
    unit_roundoff = torch.finfo(fields.dtype).eps / 2
    scale = float(fields.abs().max()) + 2 * float(model.couplings.abs().max())
    return (steps + 1) * unit_roundoff * scale


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sampler", [GWGSampler(), GibbsSampler("random"), MetropolisSampler()],
                         ids=["gwg", "gibbs", "metropolis"])
def test_incremental_fields_equal_recomputed_fields_after_10k_steps(dtype, sampler):
    steps = 10_000
    model = random_potts(length=20, n_states=21, coupling_scale=0.3, seed=5, dtype=dtype)
    generator = torch.Generator().manual_seed(2)
    state = sampler.init(model, torch.randint(21, (16, 20), generator=generator))
    changes = 0
    for _ in range(steps):
        state, info = sampler.step(model, state, generator)
        changes += int(info.sites_changed.sum())
    assert changes > 16 * steps / 10  # the chains did move
    recomputed = model.local_fields(state.x)
    bound = field_drift_bound(model, recomputed, steps)
    assert float((state.fields - recomputed).abs().max()) <= bound
    # The running f(x) adds one Δf = F[i, a] − F[i, x_i] per change: each addition rounds by
    # ≤ u·(|f| + 2|F|) (float32: bound ≈ 3·10⁻², seen ~10⁻⁴).
    energy = model(state.x)
    energy_bound = (steps + 1) * torch.finfo(dtype).eps / 2 * (
        float(energy.abs().max()) + 2 * float(recomputed.abs().max()))
    assert float((state.log_prob - energy).abs().max()) <= energy_bound


def test_numpy_parameters_as_fit_plm_returns_them_make_the_same_energy():
    model = random_potts(length=4, n_states=3)
    from_numpy = PottsEnergy(model.h.numpy(), model.J.numpy())
    states = all_states(model)
    torch.testing.assert_close(from_numpy(states), model(states), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"h must be \(L, q\) and J \(L, L, q, q\), both "
                                          r"floats; got \(12,\)"):
        PottsEnergy(model.h.reshape(-1), model.J)
    with pytest.raises(ValueError, match="torch.int64"):
        PottsEnergy(model.h.long(), model.J.long())
