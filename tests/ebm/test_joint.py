"""The joint sampler and prediction on small mixed models whose distributions are known exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from potts_gwg.ebm.joint import (
    ConditionalLabelEnergy,
    JointEnergy,
    JointSampler,
    Langevin,
    MLPJointEnergy,
    anneal_data_given_labels,
    enumerate_labels,
    label_log_posterior,
    predict_by_sampling,
    predict_exact,
    run_joint_chains,
)
from potts_gwg.engine import GibbsSampler, GWGSampler
from potts_gwg.errors import InputError, ResourceError

pytestmark = pytest.mark.usefixtures("single_thread")


class GaussianConditionalEnergy(JointEnergy):
    """f(x, y) = g(y) − |x − μ(y)|² / (2 s(y)²) in features φ = flattened relaxed y:

    g = a·φ + φᵀ W φ, μ = m0 + φ M, log s = c0 + c·φ. Then x | y ~ N(μ(y), s(y)² I) and
    p(y) ∝ exp(g(y)) s(y)^d exactly, for binary or categorical labels.
    """

    def __init__(self, data_dim: int, n_labels: int, n_states: int, label_kind: str,
                 seed: int):
        super().__init__(data_dim, n_labels, n_states, label_kind)
        gen = torch.Generator().manual_seed(seed)
        width = self.label_width
        self.a = nn.Parameter(torch.randn(width, generator=gen) * 0.7)
        self.w = nn.Parameter(torch.randn(width, width, generator=gen).triu(1) * 0.5)
        self.m0 = nn.Parameter(torch.randn(data_dim, generator=gen) * 0.3)
        self.m = nn.Parameter(torch.randn(width, data_dim, generator=gen) * 0.6)
        self.c0 = nn.Parameter(torch.tensor(-0.2))
        self.c = nn.Parameter(torch.randn(width, generator=gen) * 0.2)

    def parts(self, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        phi = v.flatten(1)
        g = phi @ self.a + ((phi @ self.w) * phi).sum(1)
        return g, self.m0 + phi @ self.m, self.c0 + phi @ self.c

    def relaxed_log_prob(self, x: Tensor, v: Tensor) -> Tensor:
        g, mean, log_scale = self.parts(v)
        return g - ((x - mean) ** 2).sum(1) / (2 * torch.exp(2 * log_scale))

    @torch.no_grad()
    def exact(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Configurations (C, k), p(y) (C,), E[x | y] (C, d), sd(x_j | y) (C,)."""
        labels = enumerate_labels(self.n_labels, self.n_states)
        g, mean, log_scale = self.parts(self.relax_labels(labels))
        log_p = g + self.data_dim * log_scale
        return labels, torch.softmax(log_p, 0), mean, log_scale.exp()

    @torch.no_grad()
    def draw(self, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """n exact draws of (x, y)."""
        labels, probs, mean, scale = self.exact()
        which = torch.multinomial(probs, n, replacement=True, generator=gen)
        x = mean[which] + scale[which, None] * torch.randn(n, self.data_dim, generator=gen)
        return x, labels[which]


def configuration_index(y: Tensor, n_states: int) -> Tensor:
    """Index of each row of ``y (B, k)`` in :func:`enumerate_labels` order."""
    weights = n_states ** torch.arange(y.shape[1] - 1, -1, -1)
    return (y * weights).sum(1)


def check_against_exact(model: GaussianConditionalEnergy, x: Tensor, y: Tensor) -> None:
    labels, probs, mean, scale = model.exact()
    index = configuration_index(y, model.n_states)
    frequencies = torch.bincount(index, minlength=labels.shape[0]).double() / len(index)
    # Tolerance: 4.5 binomial standard errors of the largest probability on these draws
    # (chains are independent; each is one draw).
    se = (probs.max() * (1 - probs.max()) / len(index)).sqrt()
    assert (frequencies - probs.double()).abs().max() < 4.5 * se, (frequencies, probs)
    for c in range(labels.shape[0]):
        rows = x[index == c]
        if len(rows) < 200:
            continue
        # Mean: 4.5 standard errors s/√n; standard deviation: 4.5 relative errors √(1/2n),
        # both per coordinate.
        assert ((rows.mean(0) - mean[c]).abs() < 4.5 * scale[c] / len(rows) ** 0.5).all()
        relative = (rows.std(0) / scale[c] - 1).abs()
        assert (relative < 4.5 * (0.5 / len(rows)) ** 0.5).all(), (c, relative)


@pytest.mark.parametrize("label_kind, n_states, label_sampler", [
    ("binary", 2, GWGSampler()),
    ("categorical", 3, GWGSampler()),
    ("binary", 2, GibbsSampler(scan="random")),
])
def test_mala_within_gibbs_keeps_the_joint_distribution(label_kind, n_states, label_sampler):
    model = GaussianConditionalEnergy(2, 2, n_states, label_kind, seed=3)
    gen = torch.Generator().manual_seed(11)
    x0, y0 = model.draw(6000, gen)
    sampler = JointSampler(label_sampler, Langevin(step_size=0.6, adjusted=True))
    run = run_joint_chains(sampler, model, x0, y0, n_samples=1, burn_in=30, generator=gen)
    assert 0.3 < run.data_acceptance < 1.0 and run.label_acceptance > 0.1
    check_against_exact(model, run.x[-1], run.y[-1])


def test_joint_sampler_converges_from_a_wrong_start():
    model = GaussianConditionalEnergy(2, 2, 2, "binary", seed=5)
    gen = torch.Generator().manual_seed(2)
    n = 6000
    x0 = torch.full((n, 2), 3.0)
    y0 = torch.zeros((n, 2), dtype=torch.long)
    sampler = JointSampler(langevin=Langevin(step_size=0.6, adjusted=True))
    run = run_joint_chains(sampler, model, x0, y0, n_samples=1, burn_in=300, generator=gen)
    check_against_exact(model, run.x[-1], run.y[-1])


def test_conditional_sampling_of_x_given_y_and_with_fixed_sites():
    model = GaussianConditionalEnergy(2, 2, 2, "binary", seed=5)
    _labels, probs, mean, scale = model.exact()
    gen = torch.Generator().manual_seed(4)
    n = 4000
    y0 = torch.tensor([[1, 0]]).repeat(n, 1)
    x_given_y = JointSampler(update_labels=False, langevin=Langevin(0.6, adjusted=True))
    run = run_joint_chains(x_given_y, model, torch.zeros(n, 2), y0, burn_in=150, generator=gen)
    assert (run.y[-1] == y0).all()
    c = 2  # (1, 0) in enumeration order
    # 4.5 standard errors of the mean, per coordinate.
    assert ((run.x[-1].mean(0) - mean[c]).abs() < 4.5 * scale[c] / n ** 0.5).all()

    # Site 0 held at 1: y_1 and x follow p(x, y_1 | y_0 = 1).
    fixed = JointSampler(langevin=Langevin(0.6, adjusted=True),
                         fixed_sites=torch.tensor([True, False]))
    x0, y_start = model.draw(n, gen)
    y_start[:, 0] = 1
    run = run_joint_chains(fixed, model, x0, y_start, burn_in=200, generator=gen)
    assert (run.y[-1][:, 0] == 1).all()
    conditional = probs[2:] / probs[2:].sum()
    frequency = (run.y[-1][:, 1] == 1).double().mean()
    # 4.5 binomial standard errors.
    se = (conditional[1] * conditional[0] / n).sqrt()
    assert abs(frequency - conditional[1]) < 4.5 * se


def test_label_chains_sample_the_exact_posterior_given_x():
    torch.manual_seed(0)
    model = MLPJointEnergy(2, 3, hidden=(16,))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3)
    x = torch.tensor([[0.3, -0.7]]).repeat(8000, 1)
    gen = torch.Generator().manual_seed(1)
    y0 = torch.randint(2, (8000, 3), generator=gen)
    sampler = JointSampler(update_data=False)
    run = run_joint_chains(sampler, model, x, y0, burn_in=40, generator=gen)
    log_posterior, _labels = label_log_posterior(model, x[:1])
    probs = log_posterior.exp()[0].double()
    frequencies = torch.bincount(configuration_index(run.y[-1], 2), minlength=8).double() / 8000
    # 4.5 binomial standard errors of the largest probability.
    se = (probs.max() * (1 - probs.max()) / 8000).sqrt()
    assert (frequencies - probs).abs().max() < 4.5 * se
    assert (run.x[-1] == x).all()


def test_exact_prediction_matches_brute_force():
    torch.manual_seed(1)
    model = MLPJointEnergy(3, 2, n_states=3, label_kind="categorical", hidden=(8, 8))
    x = torch.randn(5, 3)
    log_posterior, labels = label_log_posterior(model, x)
    assert labels.shape == (9, 2)
    assert torch.allclose(log_posterior.logsumexp(1), torch.zeros(5), atol=1e-5)
    for row in range(5):
        values = torch.stack([model(x[row:row + 1], y.view(1, 2))[0] for y in labels])
        brute = torch.log_softmax(values, 0)
        assert torch.allclose(log_posterior[row], brute, atol=1e-5)
        assert (predict_exact(model, x[row:row + 1])[0] == labels[values.argmax()]).all()


def test_sampled_prediction_agrees_with_exact_when_the_posterior_is_peaked():
    model = GaussianConditionalEnergy(2, 2, 2, "binary", seed=3)
    with torch.no_grad():
        model.m.mul_(6)  # well-separated modes: p(y | x) is nearly deterministic
    gen = torch.Generator().manual_seed(8)
    x, _ = model.draw(300, gen)
    exact = predict_exact(model, x)
    sampled = predict_by_sampling(model, x, gen, n_samples=9, burn_in=50)
    assert (sampled == exact).float().mean() > 0.97


def test_bad_inputs_are_input_errors():
    model = MLPJointEnergy(2, 3, hidden=(4,))
    with pytest.raises(InputError, match="x"):
        model(torch.zeros(4, 3), torch.zeros(4, 3, dtype=torch.long))
    with pytest.raises(InputError, match="outside"):
        model(torch.zeros(4, 2), torch.full((4, 3), 2))
    with pytest.raises(InputError, match="NaN"):
        model(torch.full((1, 2), float("nan")), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ResourceError, match="enumeration"):
        enumerate_labels(20, 2)
    conditional = ConditionalLabelEnergy(model, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="does not match"):
        conditional.relaxed_log_prob(torch.zeros(3, 3))


@pytest.mark.parametrize("make, message", [
    (lambda: Langevin(step_size=float("nan")), "step_size must be finite, got nan"),
    (lambda: Langevin(temperature=0), "temperature must be > 0, got 0.0"),
    (lambda: MLPJointEnergy(2.0, 3), "data_dim must be an integer, got 2.0 (float)"),
    (lambda: MLPJointEnergy(2, 0), "n_labels must be >= 1, got 0"),
    (lambda: MLPJointEnergy(2, 3, n_states=3), "binary labels have n_states = 2, got 3"),
])
def test_bad_numbers_are_refused_naming_the_setting(make, message):
    with pytest.raises((TypeError, ValueError)) as caught:
        make()
    assert str(caught.value).startswith(message)


def test_numpy_sizes_become_plain_ints_in_the_architecture():
    model = MLPJointEnergy(np.int64(2), np.int32(3), n_states=np.uint8(4),
                           label_kind="categorical", hidden=(4,))
    assert json.loads(json.dumps(model.architecture()))["n_states"] == 4
    assert Langevin(np.float32(0.5)).step_size == 0.5


def test_annealed_smc_draws_x_given_y():
    model = GaussianConditionalEnergy(2, 2, 2, "binary", seed=5)
    _, _, mean, scale = model.exact()
    gen = torch.Generator().manual_seed(6)
    n = 2000
    annealed = anneal_data_given_labels(model, torch.tensor([0, 1]), n, torch.zeros(2),
                                        torch.full((2,), 3.0), gen,
                                        Langevin(0.5, adjusted=True), n_temperatures=30)
    assert annealed.resamplings >= 1 and annealed.x.shape == (n, 2)
    c = 1  # (0, 1) in enumeration order
    # Resampling correlates the particles, so 6 (not 4.5) standard errors of independent
    # draws: mean per coordinate, and the standard deviation relative to the exact one.
    assert ((annealed.x.mean(0) - mean[c]).abs() < 6 * scale[c] / n ** 0.5).all()
    assert ((annealed.x.std(0) / scale[c] - 1).abs() < 6 * (0.5 / n) ** 0.5).all()


class TwoWellEnergy(JointEnergy):
    """x ∈ R, one label that does not matter: p(x) = 0.8 N(−3, 0.3²) + 0.2 N(3, 0.3²)."""

    def __init__(self):
        super().__init__(1, 1)
        self.scale = nn.Parameter(torch.tensor(0.3))

    def relaxed_log_prob(self, x: Tensor, v: Tensor) -> Tensor:
        left = -((x[:, 0] + 3) / self.scale) ** 2 / 2 + torch.log(torch.tensor(0.8))
        right = -((x[:, 0] - 3) / self.scale) ** 2 / 2 + torch.log(torch.tensor(0.2))
        return torch.logaddexp(left, right) + 0 * v.sum(1)


def test_annealed_smc_weights_separated_modes_by_mass_not_by_basin():
    model = TwoWellEnergy()
    gen = torch.Generator().manual_seed(9)
    n = 2000
    annealed = anneal_data_given_labels(model, torch.tensor([0]), n, torch.zeros(1),
                                        torch.full((1,), 3.0), gen,
                                        Langevin(0.15, adjusted=True), n_temperatures=60)
    left = float((annealed.x[:, 0] < 0).double().mean())
    # Exact: 0.8. Langevin chains from the same base split by basin (about 0.5, checked
    # below). Tolerance 0.06: 6 binomial standard errors of independent draws (0.009), as
    # resampling correlates the particles.
    assert abs(left - 0.8) < 0.06, left
    plain = run_joint_chains(JointSampler(langevin=Langevin(0.15, adjusted=True)), model,
                             3.0 * torch.randn(n, 1, generator=gen),
                             torch.zeros(n, 1, dtype=torch.long), burn_in=200, generator=gen)
    assert abs(float((plain.x[-1][:, 0] < 0).double().mean()) - 0.5) < 0.1
