"""Small models whose distribution is known by enumeration, and the TV tolerance for tests."""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from potts_gwg.engine import (EnergyModel, IsingEnergy, NeuralEnergy, PottsEnergy,
                              RBMEnergy)

DTYPE = torch.float64
# Probability that a correct sampler fails one TV check (McDiarmid term below).
FAILURE_PROBABILITY = 1e-6


def random_potts(length: int = 4, n_states: int = 3, coupling_scale: float = 0.7,
                 seed: int = 0, dtype: torch.dtype = DTYPE) -> PottsEnergy:
    """Potts model with h ~ N(0, 1), symmetric J ~ N(0, scale²), J[i, i] = 0."""
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(length, n_states, generator=generator, dtype=dtype)
    J = coupling_scale * torch.randn(length, length, n_states, n_states, generator=generator,
                                     dtype=dtype)
    J = 0.5 * (J + J.permute(1, 0, 3, 2))
    J[torch.arange(length), torch.arange(length)] = 0
    return PottsEnergy(h, J)


def random_ising(dim: int = 8, seed: int = 1) -> IsingEnergy:
    generator = torch.Generator().manual_seed(seed)
    W = torch.triu(0.25 * torch.randn(dim, dim, generator=generator, dtype=DTYPE), 1)
    return IsingEnergy(W + W.T, 0.6 * torch.randn(dim, generator=generator, dtype=DTYPE))


def random_rbm(visible: int = 6, hidden: int = 4, seed: int = 2) -> RBMEnergy:
    generator = torch.Generator().manual_seed(seed)
    return RBMEnergy(torch.randn(hidden, visible, generator=generator, dtype=DTYPE),
                     0.5 * torch.randn(visible, generator=generator, dtype=DTYPE),
                     0.5 * torch.randn(hidden, generator=generator, dtype=DTYPE))


def random_mlp(dim: int = 8, hidden: int = 16, seed: int = 3) -> NeuralEnergy:
    """A deep-EBM stand-in: f = MLP(x), with weights scaled so f spans a few units."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1)).to(DTYPE)
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.mul_(5.0)
    return NeuralEnergy(net, "binary", dim)


def all_states(model: EnergyModel) -> torch.Tensor:
    """Every state, ``(n_states ** n_sites, n_sites)`` long, in base-q order."""
    values = range(model.n_states)
    return torch.tensor(list(itertools.product(values, repeat=model.n_sites)))


def state_index(x: torch.Tensor, n_states: int) -> torch.Tensor:
    """The row of ``all_states`` for each state in ``x (B, n)``."""
    weights = n_states ** torch.arange(x.shape[1] - 1, -1, -1)
    return (x.cpu() * weights).sum(1)


def exact_distribution(model: EnergyModel) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model(all_states(model)).double(), 0)


def exact_samples(model: EnergyModel, n: int, generator: torch.Generator) -> torch.Tensor:
    """n independent draws from p by enumeration."""
    probabilities = exact_distribution(model)
    return all_states(model)[torch.multinomial(probabilities, n, replacement=True,
                                               generator=generator)]


def total_variation(x: torch.Tensor, model: EnergyModel) -> float:
    probabilities = exact_distribution(model)
    counts = torch.bincount(state_index(x, model.n_states), minlength=len(probabilities))
    return 0.5 * float((counts.double() / len(x) - probabilities).abs().sum())


def tv_tolerance(model: EnergyModel, n: int) -> float:
    """Bound on the TV distance of n independent exact samples, failing w.p. ≤ 1e-6.

    E[TV] ≤ ½ Σ_k sqrt(p_k (1 − p_k) / n) (Jensen on each |p̂_k − p_k|), and TV moves by at
    most 1/n when one sample changes, so by McDiarmid P(TV > E[TV] + t) ≤ exp(−2 n t²):
    t = sqrt(ln(1/δ) / (2n)). With n = 2¹⁵ and the models here this is ≈ 0.02–0.035.
    """
    probabilities = exact_distribution(model)
    expected = 0.5 * float((probabilities * (1 - probabilities) / n).sqrt().sum())
    return expected + math.sqrt(math.log(1 / FAILURE_PROBABILITY) / (2 * n))


def frequency_tolerance(n: int, k: int) -> float:
    """TV bound for n independent draws over k categories, as in :func:`tv_tolerance`:
    E[TV] ≤ ½·sqrt(k/n) (Cauchy–Schwarz) plus a McDiarmid margin for δ = 1e-6."""
    return 0.5 * math.sqrt(k / n) + math.sqrt(math.log(1e6) / (2 * n))
