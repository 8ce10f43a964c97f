"""Maximum-likelihood Potts fits by persistent contrastive divergence (PCD).

The gradient of the mean log-likelihood per effective sequence is a difference of
statistics: the data's weighted one- and two-site frequencies (computed once) minus those
of B persistent chains, which the engine's Potts samplers (local-field Gibbs or GWG) move by
``steps`` single-site updates between parameter updates (default: a tenth of a sweep, at
least 10). Penalties use the PLM convention
scaled to one effective sequence:

    maximise  (1/Neff) [Σ_n w_n log p(x_n) − λ_h ‖h‖² − λ_J (L−1) Σ_{i<j} ‖J_ij‖²]
              − λ_group Σ_{i<j} ‖J_ij‖_F

the same formula as PLM's. At equal λ_J it is twice as strong here: the pseudo-likelihood
counts each coupling in two conditionals, so its data gradient for J_ij is about twice the
likelihood's. The default λ_J is therefore lower than PLM's 0.2: 0.02, which kept the contact
ranking of the PLM start best on the dev families (0.1 and 0.2 lowered it more;
benchmarks/README.md). The optimiser is plain gradient ascent (or Adam) on (h, J). The
couplings live in the chains' :class:`PottsEnergy` as the symmetric ``(L·q, L·q)`` matrix
and are updated in place; after each update the chain state is rebuilt (``sampler.init``)
because its local fields belong to the old parameters.

Everything the run depends on (parameters, Adam moments, chains, generator state, counters)
is a :class:`PcdState`; :mod:`potts_gwg.fit.checkpoint` saves and restores it, so a resumed
run on CPU with the same seed ends identical to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..engine.potts import PottsEnergy
from ..engine.samplers import GibbsSampler, GWGSampler
from ..errors import NumericalError
from ..ordered_sums import ordered_sum
from ..settings import PcdSettings, integer, random_seed
from .inputs import (ArrayLike, FitInputError, all_finite, encoded_sequences,
                     potts_parameters, sequence_weight_vector)
from .statistics import DataStatistics, pair_frequencies, site_frequencies

ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-8
GROUP_NORM_FLOOR = 1e-8
# Chains start at data rows; before they have made this many sweeps (L steps each) since the
# start, their statistics still partly reflect the data, so --target-pearson is not honoured.
MIN_SWEEPS_BEFORE_TARGET = 10


@dataclass
class PcdState:
    """The whole state of a PCD run: enough to continue it bit for bit."""

    h: Tensor                 # (L, q) fields
    couplings: Tensor         # (L·q, L·q) symmetric, zero diagonal blocks
    moments: dict[str, Tensor]  # Adam first/second moments of h and couplings
    chains: Tensor            # (B, L) long
    scan_position: int        # next site of a systematic Gibbs scan
    generator_state: Tensor   # torch.Generator.get_state()
    window_sites: Tensor      # (L, q) chains' site frequencies summed since the last check
    window_pairs: Tensor      # (L·q, L·q) the same for pair frequencies
    iteration: int = 0
    seconds: float = 0.0      # fitting time so far, across resumes
    pearson_pairs: float = float("nan")
    pearson_sites: float = float("nan")
    acceptance: float = float("nan")


@dataclass
class PcdProgress:
    """What a progress callback sees after an iteration."""

    iteration: int
    seconds: float
    pearson_pairs: float     # Pearson of model vs data connected correlations (last check)
    pearson_sites: float     # Pearson of model vs data one-site frequencies (last check)
    acceptance: float        # mean acceptance rate of the last iteration's steps


@dataclass
class PcdResult:
    h: np.ndarray             # (L, q) float32
    J: np.ndarray             # (L, L, q, q) float32
    iterations: int
    seconds: float
    stop_reason: str          # "target_pearson" | "max_iterations" | "max_time" | "interrupted"
    pearson_pairs: float      # at the end, over the updates since the last check if any
    pearson_sites: float
    acceptance: float
    state: PcdState           # where the run stopped: continue it with another fit_pcd call


ProgressCallback = Callable[[PcdProgress], None]
CheckpointCallback = Callable[[PcdState], None]


def default_steps(length: int) -> int:
    """Sampler steps per update: a tenth of a sweep, at least 10."""
    return max(10, math.ceil(length / 10))


def make_sampler(name: str):
    """The engine kernel behind ``--method``: GWG (one site per step, gradient-informed) or
    random-scan Gibbs; both on the Potts local-field fast path.

    Not systematic scan: with a tenth of a sweep between updates, every chain's site i then
    stays frozen for ten updates while the gradient keeps pushing h_i and J_i· the same way,
    and the fit oscillates away (DHFR from the PLM start: Pearson C 0.93 -> 0.34 -> 0.08
    after 20, 40, 60 updates; random scan 0.94, 0.93, 0.93)."""
    return GWGSampler() if name == "gwg" else GibbsSampler(scan="random")


def couplings_from_J(J: Tensor) -> Tensor:
    """``(L, L, q, q)`` -> the symmetric ``(L·q, L·q)`` matrix of :class:`PottsEnergy`."""
    length, _, n_states, _ = J.shape
    return J.permute(0, 2, 1, 3).reshape(length * n_states, length * n_states).contiguous()


def J_from_couplings(couplings: Tensor, length: int, n_states: int) -> Tensor:
    return couplings.view(length, n_states, length, n_states).permute(0, 2, 1, 3).contiguous()


def initial_state(h: ArrayLike, J: ArrayLike, data: ArrayLike, weights: ArrayLike,
                  settings: PcdSettings, seed: int) -> PcdState:
    """Start from (h, J); chains are data rows drawn in proportion to their weights, which
    starts them near the model's distribution when (h, J) is already a good fit.

    ``h (L, q)``, ``J (L, L, q, q)``, ``data (N, L)`` and ``weights (N,)`` are numpy arrays or
    torch tensors (checked by :mod:`.inputs`); the state lives on ``data``'s device. ``seed``
    is an integer in 0..2^63 - 1 (as ``fit --seed``).
    """
    seed = random_seed(seed)
    h, J = potts_parameters(h, J, device=None)
    data = encoded_sequences(data, h.shape[1], name="data")
    h, J = h.to(data.device), J.to(data.device)
    if h.shape[0] != data.shape[1]:
        raise FitInputError(f"h and J are for L = {h.shape[0]} sites, data has "
                            f"L = {data.shape[1]} columns")
    weights = sequence_weight_vector(weights, data.shape[0], data.device)
    generator = torch.Generator(device=data.device)
    generator.manual_seed(seed)
    rows = torch.multinomial(weights, settings.n_chains, replacement=True, generator=generator)
    couplings = couplings_from_J(J)
    moments = {} if settings.optimizer != "adam" else {
        name: torch.zeros_like(tensor) for name, tensor in
        (("h_mean", h), ("h_square", h), ("couplings_mean", couplings),
         ("couplings_square", couplings))}
    return PcdState(h=h.clone(), couplings=couplings, moments=moments,
                    chains=data[rows], scan_position=0,
                    generator_state=generator.get_state(), window_sites=torch.zeros_like(h),
                    window_pairs=torch.zeros_like(couplings))


def fit_pcd(data: ArrayLike, weights: ArrayLike, n_states: int, state: PcdState,
            settings: PcdSettings, on_iteration: ProgressCallback | None = None,
            on_checkpoint: CheckpointCallback | None = None,
            checkpoint_interval: float | None = None,
            stop_requested: Callable[[], bool] | None = None) -> PcdResult:
    """Run PCD from ``state`` (fresh from :func:`initial_state` or a restored checkpoint;
    it is not modified).

    ``data`` (N, L) and ``weights`` (N,) (numpy or torch) are moved to the state's device.
    Stops when the Pearson correlation of connected correlations reaches ``target_pearson``
    (checked every ``check_every`` iterations on the chains' statistics averaged over those
    iterations, and only once the chains have made ``MIN_SWEEPS_BEFORE_TARGET`` sweeps), at
    ``max_iterations`` or after ``max_time`` seconds.
    ``on_checkpoint(state)`` is called every ``checkpoint_interval`` seconds of wall time,
    and when ``stop_requested()`` (polled after each update) turns True: the fit then stops
    with ``stop_reason`` "interrupted" (see :mod:`potts_gwg.interrupts`).
    """
    device = state.chains.device
    n_states = integer("n_states", n_states, least=1)
    data = encoded_sequences(data, n_states, device, name="data")
    weights = sequence_weight_vector(weights, data.shape[0], device)
    if tuple(state.h.shape) != (data.shape[1], n_states):
        raise FitInputError(f"the state is for (L, q) = {tuple(state.h.shape)}, the data and "
                            f"n_states for {(data.shape[1], n_states)}")
    if state.chains.shape[0] != settings.n_chains:
        raise ValueError(f"the state has {state.chains.shape[0]} chains, the settings "
                         f"n_chains={settings.n_chains}: continue with the state's own settings")
    if (settings.optimizer == "adam") != bool(state.moments):
        raise ValueError(f"the state was made for another optimizer than {settings.optimizer!r} "
                         "(Adam keeps moments in the state): continue with its own settings")
    length = data.shape[1]
    n_effective = ordered_sum(weights)
    statistics = DataStatistics(data, n_states, weights)
    energy = PottsEnergy(state.h, J_from_couplings(state.couplings, length, n_states))
    # Train the energy's own buffers in place: no copy of J per update.
    h, couplings = energy.h, energy.couplings
    moments = {name: moment.clone() for name, moment in state.moments.items()}
    lambda_h = settings.lambda_h / n_effective
    lambda_j = settings.lambda_j * (length - 1) / n_effective
    sampler = make_sampler(settings.sampler)
    steps = settings.steps or default_steps(length)
    target_from = math.ceil(MIN_SWEEPS_BEFORE_TARGET * length / steps)
    window_sites, window_pairs = state.window_sites.clone(), state.window_pairs.clone()
    generator = torch.Generator(device=data.device)
    generator.set_state(state.generator_state)
    chains = sampler.init(energy, state.chains)
    chains = dataclasses.replace(chains, position=state.scan_position)
    diagonal = torch.arange(length, device=data.device)
    model_pairs = torch.empty_like(couplings)  # reused every update, then the gradient
    iteration, seconds = state.iteration, state.seconds
    pearson_pairs, pearson_sites = state.pearson_pairs, state.pearson_sites
    acceptance = state.acceptance
    stop_reason = "max_iterations"
    last_checkpoint = time.monotonic()

    def snapshot(copy: bool = True) -> PcdState:
        """The run's state; ``copy=False`` hands over the live tensors (at the end only:
        no second copy of the (L·q)² arrays at the peak)."""
        own = Tensor.clone if copy else (lambda tensor: tensor)
        return PcdState(h=h.clone(), couplings=own(couplings),
                        moments={k: own(v) for k, v in moments.items()},
                        chains=chains.x.clone(), scan_position=chains.position,
                        generator_state=generator.get_state(),
                        window_sites=window_sites.clone(), window_pairs=own(window_pairs),
                        iteration=iteration,
                        seconds=seconds, pearson_pairs=pearson_pairs,
                        pearson_sites=pearson_sites, acceptance=acceptance)

    while True:
        # pearson_pairs is from the last check (iterations are counted across resumes, so
        # checks fall on multiples of check_every); a check before target_from does not count.
        last_check = iteration - iteration % settings.check_every
        if settings.target_pearson is not None and last_check >= max(target_from, 1) and \
                pearson_pairs >= settings.target_pearson:
            stop_reason = "target_pearson"
            break
        if iteration >= settings.max_iterations:
            break
        if settings.max_time is not None and seconds >= settings.max_time:
            stop_reason = "max_time"
            break
        started = time.perf_counter()
        accepted = torch.zeros((), device=data.device)
        with torch.no_grad():
            for _ in range(steps):
                chains, info = sampler.step(energy, chains, generator)
                accepted += info.acceptance_rate
            # The fields move by row differences during the steps: they can overflow there
            # even when the parameters and the rebuilt fields below are finite.
            sampled_finite = all_finite(chains.fields)
            model_sites = site_frequencies(chains.x, n_states)
            pair_frequencies(chains.x, n_states, out=model_pairs)
            iteration += 1
            window_sites += model_sites
            window_pairs += model_pairs
            if iteration % settings.check_every == 0:
                pearson_pairs, pearson_sites = statistics.pearson(
                    window_sites / settings.check_every, window_pairs / settings.check_every)
                window_sites.zero_()
                window_pairs.zero_()
            acceptance = float(accepted) / steps
            grad_h = statistics.sites - model_sites - 2.0 * lambda_h * h
            grad_couplings = model_pairs.neg_().add_(statistics.pairs)
            grad_couplings.add_(couplings, alpha=-2.0 * lambda_j)
            blocks = grad_couplings.view(length, n_states, length, n_states)
            if settings.lambda_group > 0 and settings.optimizer == "adam":
                coupling_blocks = couplings.view(length, n_states, length, n_states)
                norms = coupling_blocks.square().sum((1, 3), keepdim=True).sqrt_()
                blocks.sub_(coupling_blocks / norms.clamp_min_(GROUP_NORM_FLOOR)
                            * settings.lambda_group)
            blocks[diagonal, :, diagonal, :] = 0.0
            if settings.optimizer == "adam":
                _adam_ascent(h, grad_h, moments["h_mean"], moments["h_square"], iteration,
                             settings.learning_rate)
                _adam_ascent(couplings, grad_couplings, moments["couplings_mean"],
                             moments["couplings_square"], iteration, settings.learning_rate)
            else:
                h.add_(grad_h, alpha=settings.learning_rate)
                couplings.add_(grad_couplings, alpha=settings.learning_rate)
                if settings.lambda_group > 0:
                    _shrink_groups(couplings, length, n_states,
                                   settings.learning_rate * settings.lambda_group)
            position = chains.position
            chains = dataclasses.replace(sampler.init(energy, chains.x), position=position)
            # The local fields sum L coupling rows: they overflow before the parameters do.
            if not bool(sampled_finite & all_finite(h) & all_finite(couplings)
                        & all_finite(chains.fields)):
                raise NumericalError(
                    f"PCD parameters became non-finite at iteration {iteration}; lower "
                    "--learning-rate or raise --lambda-j (the last checkpoint is kept)")
        seconds += time.perf_counter() - started
        if on_iteration is not None:
            on_iteration(PcdProgress(iteration, seconds, pearson_pairs, pearson_sites,
                                     acceptance))
        if stop_requested is not None and stop_requested():
            stop_reason = "interrupted"
            if on_checkpoint is not None:
                on_checkpoint(snapshot())
            break
        if on_checkpoint is not None and checkpoint_interval is not None and \
                time.monotonic() - last_checkpoint >= checkpoint_interval:
            on_checkpoint(snapshot())
            last_checkpoint = time.monotonic()

    final_state = snapshot(copy=False)
    in_window = iteration % settings.check_every
    if in_window and stop_reason != "target_pearson":
        # report on the updates since the last check too (the state is unchanged); a target
        # stop reports the check that met the target
        pearson_pairs, pearson_sites = statistics.pearson(window_sites / in_window,
                                                          window_pairs / in_window)
    J = J_from_couplings(couplings, length, n_states)
    return PcdResult(h=h.cpu().numpy().astype(np.float32), J=J.float().cpu().numpy(),
                     iterations=iteration, seconds=seconds, stop_reason=stop_reason,
                     pearson_pairs=pearson_pairs, pearson_sites=pearson_sites,
                     acceptance=acceptance, state=final_state)


def _shrink_groups(couplings: Tensor, length: int, n_states: int, threshold: float) -> None:
    """Proximal step of the group-L1 penalty, in place: each pair block J_ij shrinks by
    ``threshold`` in Frobenius norm, and blocks weaker than that become exactly zero."""
    blocks = couplings.view(length, n_states, length, n_states)
    norms = blocks.square().sum((1, 3), keepdim=True).sqrt_()
    blocks.mul_((1.0 - threshold / norms.clamp_min_(GROUP_NORM_FLOOR)).clamp_min_(0.0))


def _adam_ascent(parameter: Tensor, gradient: Tensor, mean: Tensor, square: Tensor,
                 step: int, learning_rate: float) -> None:
    """One Adam step up the gradient, in place; moments updated in place."""
    beta1, beta2 = ADAM_BETAS
    mean.mul_(beta1).add_(gradient, alpha=1 - beta1)
    square.mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
    step_size = learning_rate * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
    parameter.addcdiv_(mean, square.sqrt().add_(ADAM_EPSILON), value=step_size)
