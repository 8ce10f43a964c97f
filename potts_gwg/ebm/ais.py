"""Annealed importance sampling (AIS, Neal 2001) with GWG transitions: log Z and test
log-likelihood of an energy model.

Chains start from exact draws of a normalised base distribution p_base (log Z_base = 0) and
move through f_β(x) = (1 − β) log p_base(x) + β f(x) for 0 = β_0 < β_1 < … < β_T = 1. Each
chain's log weight is Σ_t (β_t − β_{t−1}) [f(x_{t−1}) − log p_base(x_{t−1})], where x_t comes
from x_{t−1} by GWG steps that leave f_{β_t} invariant. The mean of the weights is an
unbiased estimate of Z, so log Ẑ = logsumexp(log w) − log n; its standard error is the delta
method's std(w) / (√n · mean(w)), meaningful when the weights' effective number of chains
(Σw)² / Σw² is not tiny.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from ..engine import EnergyModel, GWGSampler
from ..engine.driver import checked_generator
from ..errors import InputError, NumericalError
from ..settings import integer
from .networks import IndependentSites

SCHEDULES = ("sigmoid", "linear")
SIGMOID_SPREAD = 4.0  # the sigmoid schedule of Grosse et al. (2013), δ = 4


class AnnealedEnergy(EnergyModel):
    """f_β = (1 − β) log p_base + β f on the same states; ``beta`` is set between steps."""

    def __init__(self, model: EnergyModel, base: IndependentSites):
        super().__init__(model.n_sites, model.n_states)
        if (base.n_sites, base.n_states) != (model.n_sites, model.n_states):
            raise InputError(f"the base distribution ({base.n_sites} sites × {base.n_states} "
                             f"states) does not match the model ({model.n_sites} × "
                             f"{model.n_states})")
        if base.kind != model.kind:  # e.g. a categorical model with two states
            base = IndependentSites(base.table, normalise=False, kind=model.kind)
        self.kind = model.kind
        self.model = model
        self.base = base
        self.beta = 0.0

    def relaxed_log_prob(self, v: Tensor) -> Tensor:
        return ((1 - self.beta) * self.base.relaxed_log_prob(v)
                + self.beta * self.model.relaxed_log_prob(v))


def temperatures(n: int, schedule: str = "sigmoid") -> Tensor:
    """β_0 = 0 < … < β_n = 1, ``(n + 1,)`` float64: equally spaced, or sigmoid-spaced (dense
    at both ends, where the intermediate distributions change fastest)."""
    try:
        n = integer("n_temperatures", n, least=1)
    except (TypeError, ValueError) as error:
        raise InputError(str(error)) from None
    grid = torch.linspace(0, 1, n + 1, dtype=torch.float64)
    if schedule == "linear":
        return grid
    if schedule != "sigmoid":
        raise InputError(f"unknown schedule {schedule!r} (choose {', '.join(SCHEDULES)})")
    betas = torch.sigmoid(SIGMOID_SPREAD * (2 * grid - 1))
    return (betas - betas[0]) / (betas[-1] - betas[0])


@dataclass
class AISResult:
    """log Ẑ (nats) with its standard error, and the per-chain log weights ``(n_chains,)``."""

    log_z: float
    standard_error: float
    log_weights: Tensor
    effective_chains: float       # (Σw)² / Σw²
    n_temperatures: int
    steps_per_temperature: int
    seconds: float

    def log_likelihood(self, model: EnergyModel, data: Tensor) -> dict:
        """Mean test log-likelihood of ``data (M, n_sites)``: nats per example and bits per
        dimension; the standard error is AIS's (that of log Ẑ), not the test set's spread."""
        with torch.no_grad():
            energies = model(data).double()
        nats = float(energies.mean()) - self.log_z
        return {"log_likelihood_nats": nats,
                "bits_per_dim": -nats / (model.n_sites * math.log(2)),
                "standard_error_nats": self.standard_error,
                "n_examples": int(data.shape[0])}


def annealed_importance_sampling(model: EnergyModel, base: IndependentSites,
                                 n_temperatures: int = 1000, n_chains: int = 100,
                                 steps_per_temperature: int = 1, schedule: str = "sigmoid",
                                 generator: torch.Generator | None = None,
                                 progress: bool = True) -> AISResult:
    """Estimate log Z of ``model`` by AIS from ``base`` (module docstring).

    ``generator`` lives on the model's device (``None``: a randomly seeded one). The
    progress bar goes to stderr and only when it is a terminal.
    """
    try:
        n_temperatures = integer("n_temperatures", n_temperatures, least=1)
        n_chains = integer("n_chains", n_chains, least=2)
        steps_per_temperature = integer("steps_per_temperature", steps_per_temperature, least=1)
    except (TypeError, ValueError) as error:
        raise InputError(str(error)) from None
    betas = temperatures(n_temperatures, schedule).tolist()
    device = base.table.device
    generator = checked_generator(generator, device)
    annealed = AnnealedEnergy(model, base)
    sampler = GWGSampler()
    x = base.sample(n_chains, generator)
    log_weights = torch.zeros(n_chains, dtype=torch.float64, device=device)
    bar = tqdm(total=n_temperatures, desc="AIS", unit="β", leave=False,
               disable=not (progress and sys.stderr.isatty()))
    start = time.perf_counter()
    for previous, beta in itertools.pairwise(betas):
        with torch.no_grad():
            gap = model.log_prob_indices(x) - base.log_prob_indices(x)
        log_weights += (beta - previous) * gap.double()
        if beta < 1:  # no transition is needed after the last weight update
            annealed.beta = beta
            state = sampler.init(annealed, x)
            for _ in range(steps_per_temperature):
                state, _ = sampler.step(annealed, state, generator)
            x = state.x
        bar.update()
    seconds = time.perf_counter() - start
    bar.close()
    log_weights = log_weights.cpu()
    if not bool(torch.isfinite(log_weights).all()):
        raise NumericalError("AIS produced non-finite weights: the model's energy is not finite "
                         "on some states")
    log_mean = float(log_weights.logsumexp(0)) - math.log(n_chains)
    weights = (log_weights - log_weights.max()).exp()
    ratio = float(weights.std() / (weights.mean() * math.sqrt(n_chains)))
    return AISResult(log_z=log_mean, standard_error=ratio, log_weights=log_weights,
                     effective_chains=float(weights.sum() ** 2 / (weights ** 2).sum()),
                     n_temperatures=n_temperatures,
                     steps_per_temperature=steps_per_temperature, seconds=seconds)
