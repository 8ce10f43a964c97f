"""Energy models: formulas, relaxed evaluation, and the shape contract at the boundary."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from potts_gwg.engine import (BernoulliEnergy, CategoricalEnergy, GibbsSampler, GWGSampler,
                              IsingEnergy, LatticeIsingEnergy, NeuralEnergy, StateShapeError)
from potts_gwg.errors import InputError

from .exact import random_ising, random_mlp, random_potts, random_rbm

GENERATOR_SEED = 7


def bits(batch: int, dim: int, seed: int = GENERATOR_SEED) -> torch.Tensor:
    return torch.randint(2, (batch, dim), generator=torch.Generator().manual_seed(seed))


def lattice_adjacency(shape: tuple[int, ...], periodic: bool) -> torch.Tensor:
    """Dense nearest-neighbour coupling matrix, built site by site."""
    sites = list(itertools.product(*(range(size) for size in shape)))
    index = {site: k for k, site in enumerate(sites)}
    W = torch.zeros(len(sites), len(sites), dtype=torch.float64)
    for site in sites:
        for axis, size in enumerate(shape):
            if not periodic and site[axis] + 1 >= size:
                continue
            neighbour = list(site)
            neighbour[axis] = (site[axis] + 1) % size
            i, j = index[site], index[tuple(neighbour)]
            W[i, j] += 1
            W[j, i] += 1
    return W


@pytest.mark.parametrize("shape", [(3, 4), (3, 3, 3)])
@pytest.mark.parametrize("periodic", [True, False])
def test_lattice_ising_equals_dense_ising_on_the_lattice(shape, periodic):
    lattice = LatticeIsingEnergy(shape, coupling=0.3, bias=-0.2, periodic=periodic,
                                 dtype=torch.float64)
    W = lattice_adjacency(shape, periodic)
    dense = IsingEnergy(0.3 * W, torch.full((W.shape[0],), -0.2, dtype=torch.float64))
    x = bits(32, W.shape[0])
    torch.testing.assert_close(lattice(x), dense(x), rtol=0, atol=1e-12)
    relaxed = torch.rand(32, W.shape[0], dtype=torch.float64)
    torch.testing.assert_close(lattice(relaxed), dense(relaxed), rtol=0, atol=1e-12)


def test_rbm_energy_is_the_log_sum_over_hidden_states():
    rbm = random_rbm(visible=6, hidden=4)
    x = bits(10, 6).double()
    hidden = torch.tensor(list(itertools.product((0, 1), repeat=4)), dtype=torch.float64)
    joint = (x @ rbm.visible_bias)[:, None] + (x @ rbm.weight.T + rbm.hidden_bias) @ hidden.T
    torch.testing.assert_close(rbm(x), joint.logsumexp(1), rtol=0, atol=1e-12)


def test_independent_models_and_ising_formulas():
    logits = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    x = torch.tensor([[1, 0, 1], [0, 1, 1]])
    torch.testing.assert_close(BernoulliEnergy(logits)(x), torch.tensor([2.5, 1.0],
                                                                        dtype=torch.float64))
    table = torch.arange(6, dtype=torch.float64).view(3, 2)
    categorical = CategoricalEnergy(table)
    # table = [[0, 1], [2, 3], [4, 5]]: f = Σ_i table[i, x_i]
    torch.testing.assert_close(categorical(x), torch.tensor([1 + 2 + 5, 0 + 3 + 5.0],
                                                            dtype=torch.float64))
    ising = random_ising(dim=5)
    spins = 2 * bits(4, 5).double() - 1
    expected = torch.stack([sum(ising.coupling[i, j] * s[i] * s[j] for i in range(5)
                                for j in range(i + 1, 5)) + s @ ising.bias for s in spins])
    torch.testing.assert_close(ising((spins + 1) / 2), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("make, message", [
    (lambda: BernoulliEnergy(torch.randn(3, 4)), r"logits must be \(D,\) floats.*got \(3, 4\)"),
    (lambda: BernoulliEnergy(torch.tensor([0.0, float("nan")])), "finite"),
    (lambda: CategoricalEnergy(torch.randn(4)), r"logits must be \(L, q\) floats.*got \(4,\)"),
    (lambda: CategoricalEnergy(torch.zeros(3, 2, dtype=torch.long)), "floats"),
    (lambda: IsingEnergy(torch.full((2, 2), float("nan")), torch.zeros(2)),
     "coupling must be finite"),
])
def test_parameters_are_checked_when_the_model_is_made(make, message):
    """A (3, 4) Bernoulli table gave (batch, 4) energies and failed later, inside the driver."""
    with pytest.raises(ValueError, match=message):
        make()


def test_binary_first_order_differences_are_exact_for_ising():
    # f is linear in each spin (zero diagonal), so d̃ = −(2x − 1) ⊙ ∇f is the exact Δf.
    ising = random_ising(dim=8)
    x = bits(6, 8)
    sampler = GWGSampler()
    d = sampler.differences(ising, sampler.init(ising, x))
    for i in range(8):
        flipped = x.clone()
        flipped[:, i] = 1 - x[:, i]
        exact = ising(flipped) - ising(x)
        torch.testing.assert_close(d[torch.arange(6), i, 1 - x[:, i]], exact, rtol=0,
                                   atol=1e-12)
        assert torch.isinf(d[torch.arange(6), i, x[:, i]]).all()


def test_neural_energy_on_categorical_states_sees_one_hot_input():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4 * 3, 1)).double()
    model = NeuralEnergy(net, "categorical", n_sites=4, n_states=3)
    x = torch.tensor([[0, 1, 2, 0]])
    one_hot = torch.nn.functional.one_hot(x, 3).double()
    torch.testing.assert_close(model(x), net(one_hot).view(1))
    assert model.log_prob_and_grad(x)[1].shape == (1, 4, 3)


def test_neural_energy_with_a_wrong_output_shape_is_refused():
    model = NeuralEnergy(nn.Linear(8, 2).double(), "binary", n_sites=8)
    with pytest.raises(ValueError, match=r"must return \(3,\) or \(3, 1\).*got \(3, 2\)"):
        model(bits(3, 8))


@pytest.mark.parametrize("model_factory, x, message", [
    (random_ising, torch.zeros(5, 7), r"IsingEnergy takes \(batch, D=8\).*got \(5, 7\).*shape"),
    (random_ising, torch.zeros(8, dtype=torch.long), r"got \(8,\) torch.int64: wrong shape"),
    (random_ising, torch.full((2, 8), 2), "values must be 0 or 1"),
    (random_potts, torch.full((2, 4), 3), r"PottsEnergy takes \(batch, L=4\).*0\.\.2"),
    (random_potts, torch.zeros(2, 4), "indices must be an integer tensor"),
    (random_potts, torch.zeros(2, 4, 2), r"or \(batch, 4, 3\) one-hot.*wrong shape"),
    (random_potts, torch.zeros(2, 4, 3, dtype=torch.long), "must be floating point"),
    (random_potts, torch.zeros(0, 4, dtype=torch.long), "empty batch"),
])
def test_the_shape_contract_is_enforced_with_precise_messages(model_factory, x, message):
    model = model_factory()
    with pytest.raises(StateShapeError, match=message):
        model(x)
    with pytest.raises(StateShapeError, match=message):
        GibbsSampler().init(model, x)


def test_states_must_be_exactly_discrete_but_energies_take_relaxed_input():
    potts = random_potts()
    relaxed = torch.full((2, 4, 3), 1 / 3, dtype=torch.float64)
    assert potts(relaxed).shape == (2,)
    with pytest.raises(StateShapeError, match="exactly one-hot"):
        GWGSampler().init(potts, relaxed)
    one_hot = torch.nn.functional.one_hot(torch.tensor([[0, 1, 2, 1]]), 3).double()
    assert GWGSampler().init(potts, one_hot).x.tolist() == [[0, 1, 2, 1]]
    mlp = random_mlp()
    assert mlp(torch.full((3, 8), 0.5, dtype=torch.float64)).shape == (3,)
    with pytest.raises(StateShapeError, match="values must be 0 or 1"):
        GWGSampler().init(mlp, torch.full((3, 8), 0.5))
    assert GWGSampler().init(mlp, torch.ones(3, 8, dtype=torch.bool)).x.dtype == torch.long


def test_shape_errors_are_input_errors_and_value_errors():
    assert issubclass(StateShapeError, InputError) and issubclass(StateShapeError, ValueError)


def test_energies_of_index_states_are_differentiable_in_the_parameters():
    # PCD on a deep EBM needs ∂f(x)/∂θ at data and at sampled states.
    model = random_mlp()
    model(bits(4, 8)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_ising_project_restores_a_symmetric_coupling_with_zero_diagonal():
    coupling = torch.randn(5, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    model = IsingEnergy(0.5 * (coupling + coupling.T) * (1 - torch.eye(5, dtype=torch.float64)),
                        torch.zeros(5, dtype=torch.float64))
    with torch.no_grad():
        model.coupling += coupling               # asymmetric, non-zero diagonal
        model.project_()
    assert torch.equal(model.coupling, model.coupling.T)
    assert float(model.coupling.diagonal().abs().max()) == 0
