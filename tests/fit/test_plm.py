"""PLM: objective and gradient against their definitions, parameter recovery, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional

from potts_gwg.contacts import zero_sum_gauge
from potts_gwg.errors import DeviceError
from potts_gwg.fit.plm import PlmSettings, _PlmObjective, add_transpose_in_place, fit_plm
from potts_gwg.ordered_sums import ordered_dot, ordered_sum

from .known_models import exact_samples, symmetric_couplings


def brute_force_objective(x, weights, h, J, lambda_h, lambda_j):
    """Σ_n w_n Σ_i −log p(x_ni | rest) + λ_h‖h‖² + λ_J Σ_{i<j}‖J_ij‖², loop by loop."""
    n_sequences, length = x.shape
    total = 0.0
    for n in range(n_sequences):
        for i in range(length):
            energies = [h[i, a] + sum(J[i, j, a, x[n, j]] for j in range(length) if j != i)
                        for a in range(h.shape[1])]
            total -= weights[n] * (energies[x[n, i]] - np.logaddexp.reduce(energies))
    penalty = lambda_h * (h ** 2).sum() + lambda_j * sum(
        (J[i, j] ** 2).sum() for i in range(length) for j in range(i + 1, length))
    return total + penalty


def flat_parameters(h: np.ndarray, E: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.as_tensor(h, dtype=torch.float64).reshape(-1), E.reshape(-1)])


def value_and_gradient(objective: _PlmObjective, point: torch.Tensor
                       ) -> tuple[float, torch.Tensor]:
    gradient = torch.full_like(point, float("nan"))  # whatever the buffer held is overwritten
    return objective.value_and_gradient(point, gradient), gradient


# The lookup by gathers (CPU) and by one-hot matrix products (GPU), both on the CPU here.
LOOKUPS = pytest.mark.parametrize("one_hot_products", [False, True], ids=["gathers", "products"])


@LOOKUPS
def test_objective_equals_its_definition(one_hot_products):
    length, n_states = 4, 3
    rng = np.random.default_rng(0)
    x = rng.integers(0, n_states, size=(7, length))
    weights = rng.random(7)
    h = rng.normal(size=(length, n_states))
    E = symmetric_couplings(length, n_states, seed=1)
    J = E.view(length, n_states, length, n_states).permute(0, 2, 1, 3).numpy()
    settings = PlmSettings(lambda_h=0.3, lambda_j=0.2)
    objective = _PlmObjective(torch.as_tensor(x), torch.as_tensor(weights, dtype=torch.float64),
                              n_states, settings, one_hot_products=one_hot_products)
    value, _gradient = value_and_gradient(objective, flat_parameters(h, E))
    expected = brute_force_objective(x, weights, h, J, 0.3, 0.2 * (length - 1))
    assert value / objective.scale == pytest.approx(expected, rel=1e-6)


@LOOKUPS
def test_gradient_matches_finite_differences_along_symmetric_directions(one_hot_products):
    """In float64; directions keep E symmetric with zero diagonal blocks, as the fit does."""
    length, n_states = 5, 4
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.integers(0, n_states, size=(30, length)))
    weights = torch.as_tensor(rng.random(30), dtype=torch.float64)
    objective = _PlmObjective(x, weights, n_states, PlmSettings(lambda_h=0.1, lambda_j=0.05),
                              one_hot_products=one_hot_products)
    point = flat_parameters(rng.normal(size=(length, n_states)),
                            symmetric_couplings(length, n_states, seed=2))
    _value, gradient = value_and_gradient(objective, point)
    coupling_gradient = gradient[length * n_states:].view(length * n_states, -1)
    assert torch.allclose(coupling_gradient, coupling_gradient.T)
    direction = flat_parameters(rng.normal(size=(length, n_states)),
                                symmetric_couplings(length, n_states, seed=3))
    step = 1e-6
    plus, _ = value_and_gradient(objective, point + step * direction)
    minus, _ = value_and_gradient(objective, point - step * direction)
    numerical = (plus - minus) / (2 * step)
    assert float(gradient.dot(direction)) == pytest.approx(numerical, rel=1e-6)


def test_evaluations_do_not_leak_into_each_other_through_the_reused_buffers():
    length, n_states = 6, 4
    rng = np.random.default_rng(4)
    x = torch.as_tensor(rng.integers(0, n_states, size=(40, length)))
    objective = _PlmObjective(x, torch.ones(40), n_states, PlmSettings())
    first, second = (flat_parameters(rng.normal(size=(length, n_states)),
                                     symmetric_couplings(length, n_states, seed=seed)).float()
                     for seed in (5, 6))
    value, gradient = value_and_gradient(objective, first)
    value_and_gradient(objective, second)
    again, gradient_again = value_and_gradient(objective, first)
    assert again == value and torch.equal(gradient_again, gradient)


def test_products_match_gathers_in_float32_and_survive_freed_buffers(monkeypatch):
    """The GPU's lookup (one-hot products) against the CPU's (gathers) in the fit's float32,
    run on the CPU; then again after ``free_buffers``, as the fit frees them at its end. The
    products run with TF32 off even where the process turned it on."""
    length, n_states = 7, 5
    rng = np.random.default_rng(8)
    x = torch.as_tensor(rng.integers(0, n_states, size=(60, length)))
    weights = torch.as_tensor(rng.uniform(0.2, 1.0, size=60), dtype=torch.float32)
    point = flat_parameters(rng.normal(size=(length, n_states)),
                            symmetric_couplings(length, n_states, seed=9)).float()
    gathers = _PlmObjective(x, weights, n_states, PlmSettings(), one_hot_products=False)
    products = _PlmObjective(x, weights, n_states, PlmSettings(), one_hot_products=True)
    expected, expected_gradient = value_and_gradient(gathers, point)
    tf32_during_products = []
    plain_mm = torch.mm
    monkeypatch.setattr(torch, "mm", lambda *arguments, **options: (
        tf32_during_products.append(torch.backends.cuda.matmul.allow_tf32),
        plain_mm(*arguments, **options))[1])
    torch.backends.cuda.matmul.allow_tf32 = True  # a flag, also without CUDA
    try:
        for _ in range(2):
            value, gradient = value_and_gradient(products, point)
            assert value == pytest.approx(expected, rel=1e-6)
            torch.testing.assert_close(gradient, expected_gradient, rtol=1e-5, atol=1e-7)
            products.free_buffers()
            assert products.one_hot is None
        assert torch.backends.cuda.matmul.allow_tf32  # put back
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
    assert tf32_during_products == [False] * 4


def reference_value_and_gradient(objective: _PlmObjective, flat: torch.Tensor
                                 ) -> tuple[float, torch.Tensor]:
    """The objective as written before its buffers were reused: fresh arrays, one
    ``embedding_bag`` per lookup, D + Dᵀ as a copy of the transpose plus D."""
    n, length, q = objective.rows.shape[0], objective.length, objective.n_states
    fields = flat[:objective.n_fields].view(length, q)
    couplings = flat[objective.n_fields:].view(objective.n_fields, objective.n_fields)
    logits = functional.embedding_bag(objective.rows, couplings, mode="sum").view(
        n, length, q) + fields
    log_probabilities = torch.log_softmax(logits, dim=2)
    observed = log_probabilities.gather(2, objective.targets)
    value = (-ordered_sum(observed * objective.scaled_weights)
             + objective.lambda_h * ordered_dot(fields.reshape(-1), fields.reshape(-1))
             + 0.5 * objective.lambda_j * ordered_dot(flat[objective.n_fields:],
                                                      flat[objective.n_fields:]))
    logit_gradient = log_probabilities.exp_()
    logit_gradient.scatter_add_(2, objective.targets, torch.full_like(observed, -1.0))
    logit_gradient.mul_(objective.scaled_weights)
    data_gradient = functional.embedding_bag(objective.picking_sequences,
                                             logit_gradient.view(n, objective.n_fields),
                                             objective.pick_offsets, mode="sum")
    gradient = torch.empty_like(flat)
    torch.add(logit_gradient.sum(dim=0), fields, alpha=2.0 * objective.lambda_h,
              out=gradient[:objective.n_fields].view(length, q))
    coupling_gradient = gradient[objective.n_fields:].view(objective.n_fields, -1)
    coupling_gradient.copy_(data_gradient.T).add_(data_gradient)
    coupling_gradient.mul_(0.5).add_(couplings, alpha=objective.lambda_j)
    sites = torch.arange(length)
    coupling_gradient.view(length, q, length, q)[sites, :, sites, :] = 0.0
    return value, gradient


def test_objective_is_bitwise_the_one_without_reused_buffers():
    """L·q = 420: several symmetrisation tiles and column blocks; two evaluations, so the
    second one runs in the first one's buffers."""
    length, n_states = 20, 21
    rng = np.random.default_rng(8)
    x = torch.as_tensor(rng.integers(0, n_states, size=(60, length)))
    objective = _PlmObjective(x, torch.as_tensor(rng.random(60), dtype=torch.float32),
                              n_states, PlmSettings())
    for seed in (9, 10):
        point = flat_parameters(rng.normal(size=(length, n_states)),
                                symmetric_couplings(length, n_states, seed, scale=0.05)).float()
        value, gradient = value_and_gradient(objective, point)
        expected_value, expected_gradient = reference_value_and_gradient(objective, point)
        assert value == expected_value and torch.equal(gradient, expected_gradient)


@pytest.mark.parametrize("size, tile", [(1, 256), (7, 3), (12, 4), (600, 256), (513, 256)])
def test_transpose_added_in_place_equals_the_out_of_place_sum_bit_for_bit(size, tile):
    matrix = torch.randn(size, size, generator=torch.Generator().manual_seed(size))
    expected = matrix + matrix.T
    add_transpose_in_place(matrix, tile)
    assert torch.equal(matrix, expected)


def test_fit_recovers_known_couplings():
    """20 000 exact samples of an L=5, q=3 model; weak penalties. The gauged couplings are
    estimated with sampling noise of roughly 1/sqrt(20 000) per parameter, small against their
    spread (~0.5), so the correlation must exceed 0.95."""
    length, n_states = 5, 3
    rng = np.random.default_rng(7)
    h = rng.normal(scale=0.5, size=(length, n_states))
    E = symmetric_couplings(length, n_states, seed=8, scale=0.6).numpy()
    J_true = E.reshape(length, n_states, length, n_states).transpose(0, 2, 1, 3)
    x = exact_samples(h, J_true, 20000, seed=9)
    result = fit_plm(x, torch.ones(len(x)), n_states,
                     PlmSettings(lambda_h=1e-4, lambda_j=1e-4, max_iterations=300,
                                 tolerance=1e-9))
    upper = np.triu_indices(length, k=1)
    true_blocks = zero_sum_gauge(J_true)[upper].ravel()
    fitted_blocks = zero_sum_gauge(result.J)[upper].ravel()
    correlation = np.corrcoef(true_blocks, fitted_blocks)[0, 1]
    assert correlation > 0.95
    assert np.abs(fitted_blocks - true_blocks).max() < 0.2


def test_fit_output_is_symmetric_and_deterministic():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 21, size=(200, 12))
    weights = torch.ones(200)
    first = fit_plm(x, weights, 21, PlmSettings(max_iterations=15))
    second = fit_plm(x, weights, 21, PlmSettings(max_iterations=15))
    assert np.array_equal(first.J, second.J) and np.array_equal(first.h, second.h)
    np.testing.assert_array_equal(first.J, first.J.transpose(1, 0, 3, 2))
    assert np.all(first.J[np.arange(12), np.arange(12)] == 0.0)
    assert first.J.dtype == np.float32 and first.iterations <= 15


def test_fit_stops_when_the_objective_fell_less_than_the_tolerance_over_five_iterations(
        single_thread):
    """CCMpred's rule, exactly: the fit stops at the first iteration k whose objective is
    within the fraction ``tolerance`` of the one five iterations before, not earlier."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 5, size=(300, 8))
    values = []
    result = fit_plm(x, torch.ones(300), 5, PlmSettings(tolerance=0.01, max_iterations=200),
                     on_iteration=lambda iteration, value, gradient_norm: values.append(value))
    assert result.converged and 6 <= result.iterations == len(values) < 200
    history = [None] + values   # history[k]: objective after iteration k (k >= 1)

    def fell_less_than_tolerance(k):
        return history[k - 5] - history[k] <= 0.01 * abs(history[k - 5])

    assert fell_less_than_tolerance(result.iterations)
    assert not any(fell_less_than_tolerance(k) for k in range(6, result.iterations))


def test_fit_is_the_same_on_any_number_of_cpu_threads(restore_threads):
    """Users on a laptop and on a 16-core server get the same model, bit for bit. The sizes
    make torch parallelise its reductions (more than 32 768 elements)."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 21, size=(400, 20))
    weights = torch.as_tensor(rng.uniform(0.2, 1.0, size=400), dtype=torch.float32)
    fits = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        fits.append(fit_plm(x, weights, 21, PlmSettings(max_iterations=15)))
    for other in fits[1:]:
        assert other.iterations == fits[0].iterations
        assert np.array_equal(other.J, fits[0].J) and np.array_equal(other.h, fits[0].h)


@pytest.mark.gpu
def test_gpu_fit_matches_cpu_fit():
    """The GPU multiplies by one-hot rows where the CPU gathers, and its float32 reductions
    add in another order: compare loosely."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 21, size=(300, 20))
    settings = PlmSettings(max_iterations=20)
    cpu = fit_plm(x, torch.ones(300), 21, settings, device="cpu")
    gpu = fit_plm(x, torch.ones(300), 21, settings, device="cuda")
    assert gpu.objective == pytest.approx(cpu.objective, rel=1e-3)
    assert np.corrcoef(cpu.J.ravel(), gpu.J.ravel())[0, 1] > 0.999


@pytest.mark.parametrize("change", [{"lambda_j": -0.5}, {"lambda_h": -1.0},
                                    {"max_iterations": 0}, {"history_size": 0},
                                    {"tolerance": -0.1}])
def test_bad_plm_settings_are_refused_when_made(change):
    with pytest.raises(ValueError, match="must be >= "):
        PlmSettings(**change)


def test_device_names_are_those_of_the_command_line(capsys):
    x = np.random.default_rng(11).integers(0, 3, size=(20, 4))
    settings = PlmSettings(max_iterations=2)
    if not torch.cuda.is_available():
        result = fit_plm(x, np.ones(20), 3, settings, device="auto")
        assert result.J.shape == (4, 4, 3, 3)
        assert "device: auto -> cpu" in capsys.readouterr().err
    with pytest.raises(DeviceError, match="--device gpu: unknown device"):
        fit_plm(x, np.ones(20), 3, settings, device="gpu")
