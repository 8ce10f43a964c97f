"""The chain driver, separate from the kernels: burn-in, thinning, collection, diagnostics."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from ..settings import integer
from .diagnostics import effective_sample_size
from .energies import EnergyModel
from .samplers.base import ChainState, Sampler


@dataclass
class Diagnostics:
    """Summary of a run; rates cover the sampling phase (after burn-in)."""

    acceptance_rate: float        # accepted proposals / proposals, all chains
    acceptance_per_chain: Tensor  # (B,)
    sites_changed_per_step: float  # mean number of sites changed per chain-step
    statistic: Tensor             # (n_samples, B) the scalar statistic at each sample
    ess_per_chain: Tensor         # (B,) float64, NaN where the statistic never moved
    ess: float                    # Σ over chains (independent); NaN when every chain's is
    steps: Tensor                 # (n_samples,) step number of each sample (1-based)
    seconds: float                # wall time of the stepping loop


def checked_generator(generator: torch.Generator | None, device: torch.device
                      ) -> torch.Generator:
    """``generator``, or a fresh randomly seeded one on ``device`` when it is None; anything
    else (a seed, a numpy generator) is a TypeError here rather than deep inside torch."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator (on the chains' device) or None, "
                        f"got {type(generator).__name__}")
    if generator is None:
        generator = torch.Generator(device=device)
        generator.seed()
    return generator


def prepare_run(n_samples: int, burn_in: int, thin: int, generator: torch.Generator | None,
                device: torch.device) -> tuple[int, int, int, torch.Generator]:
    """A run's lengths as plain ints (2.5 failed deep inside torch; numpy int8 counts
    overflowed) and its generator (:func:`checked_generator`). Shared by every chain
    driver."""
    return (integer("n_samples", n_samples, least=1), integer("burn_in", burn_in, least=0),
            integer("thin", thin, least=1), checked_generator(generator, device))


def run_chains(sampler: Sampler, model: EnergyModel, x0: Tensor, n_samples: int,
               burn_in: int = 0, thin: int = 1, generator: torch.Generator | None = None,
               progress: bool = True,
               statistic: Callable[[ChainState], Tensor] | None = None,
               ) -> tuple[Tensor, Diagnostics]:
    """Run ``B = len(x0)`` chains for ``burn_in + n_samples · thin`` steps.

    Keeps the state after steps burn_in + thin, burn_in + 2·thin, …: returns samples
    ``(n_samples, B, n_sites)`` long on the chains' device, and :class:`Diagnostics` whose
    ESS is that of ``statistic(state) -> (B,)`` (default: the energy f(x), which the
    kernels keep current at no cost). ``generator`` (on x0's device) makes the run
    reproducible; ``None`` uses a fresh, randomly seeded one. The progress bar goes to
    stderr and only when it is a terminal.
    """
    n_samples, burn_in, thin, generator = prepare_run(n_samples, burn_in, thin, generator,
                                                      x0.device)
    statistic = statistic or (lambda state: state.log_prob)
    state = sampler.init(model, x0)
    batch = state.x.shape[0]
    device = state.x.device
    samples = torch.empty((n_samples, *state.x.shape), dtype=torch.long, device=device)
    trace = torch.empty((n_samples, batch), dtype=torch.float64, device=device)
    accepted = torch.zeros(batch, dtype=torch.long, device=device)
    changed = torch.zeros(batch, dtype=torch.long, device=device)
    total = burn_in + n_samples * thin
    bar = tqdm(total=total, desc=type(sampler).__name__, unit="step", leave=False,
               disable=not (progress and sys.stderr.isatty()))
    start = time.perf_counter()
    for step in range(1, total + 1):
        state, info = sampler.step(model, state, generator)
        if step > burn_in:
            accepted += info.accepted
            changed += info.sites_changed
            if (step - burn_in) % thin == 0:
                k = (step - burn_in) // thin - 1
                samples[k] = state.x
                trace[k] = statistic(state).detach()
        bar.update()
    seconds = time.perf_counter() - start
    bar.close()
    sampling_steps = n_samples * thin
    per_chain = accepted.double().cpu() / sampling_steps
    ess = effective_sample_size(trace)
    return samples, Diagnostics(
        acceptance_rate=float(per_chain.mean()),
        acceptance_per_chain=per_chain,
        sites_changed_per_step=float(changed.double().mean()) / sampling_steps,
        statistic=trace.cpu(),
        ess_per_chain=ess,
        ess=float(ess.nansum()) if bool(ess.isfinite().any()) else float("nan"),
        steps=burn_in + thin * torch.arange(1, n_samples + 1),
        seconds=seconds)
