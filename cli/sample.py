"""``potts-gwg sample``: draw sequences from a Potts model file with GWG or Gibbs chains."""

from __future__ import annotations

import math
import secrets
from pathlib import Path

import click
import numpy as np
import torch

from potts_gwg.atomic import atomic_open
from potts_gwg.device import resolve_device
from potts_gwg.engine import GibbsSampler, GWGSampler, PottsEnergy, run_chains
from potts_gwg.errors import InputError
from potts_gwg.io.model_file import load_model

MAX_SEED = 2 ** 63 - 1


@click.command(name="sample")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("-n", "--n-samples", "n_samples", type=int, required=True,
              help="Number of sequences to write.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="FASTA file to write (replaced only when sampling succeeds).")
@click.option("--sampler", type=click.Choice(["gwg", "gibbs"]), default="gwg", show_default=True,
              help="gwg: Gibbs-With-Gradients, one proposed change per step; gibbs: "
                   "systematic-scan Gibbs, one site redrawn per step.")
@click.option("--chains", type=int, default=None,
              help="Independent chains run in parallel; each gives ceil(N / chains) "
                   "samples.  [default: min(N, 100)]")
@click.option("--burn-in", type=int, default=None,
              help="Steps discarded before a chain's first sample.  [default: 10·L]")
@click.option("--thin", type=int, default=None,
              help="Steps between a chain's samples.  [default: L, one sweep]")
@click.option("--seed", type=int, default=None,
              help="Random seed; the same seed on the same device gives the same "
                   "sequences.  [default: drawn at random, and recorded]")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]",
              help="Where the chains run; auto takes a CUDA GPU when there is one.")
@click.option("--compare-msa", type=click.Path(dir_okay=False), metavar="MSA",
              help="Also report how well the samples reproduce this alignment's weighted "
                   "one-site frequencies and pair connected correlations (Pearson); the "
                   "query is the record named in the model's meta, else the first.")
@click.option("--theta", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.8,
              show_default=True, help="Identity threshold of the --compare-msa weights.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bar on stderr (only when it is a terminal).")
def command(model_path: Path, n_samples: int, output: Path, sampler: str, chains: int | None,
            burn_in: int | None, thin: int | None, seed: int | None, device: str,
            compare_msa: str | None, theta: float, progress: bool) -> None:
    """Sample sequences from the Potts model in MODEL (an .npz written by `potts-gwg fit`).

    Chains start from uniformly random sequences. A step changes at most one position, so
    L steps are one sweep. Sample k (1-based) is taken from chain (k − 1) mod C at its
    ⌈k / C⌉-th collection. Records are named

    \b
      >sample_<k> chain=<c> step=<t> seed=<S>

    with the sequence in the model's alphabet on one line. A one-line summary (acceptance
    rate, effective sample size of the energy) is printed when done.

    \b
    Example:
      potts-gwg sample family.npz -n 1000 --seed 7 -o samples.fasta
    """
    for name, value, least in (("-n", n_samples, 1), ("--chains", chains, 1),
                               ("--burn-in", burn_in, 0), ("--thin", thin, 1)):
        if value is not None and value < least:
            raise InputError(f"{name} must be at least {least}, got {value}")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise InputError(f"--seed must lie in 0..{MAX_SEED}, got {seed}")
    model = load_model(model_path)
    length = model.length
    chains = chains or min(n_samples, 100)
    burn_in = 10 * length if burn_in is None else burn_in
    thin = length if thin is None else thin
    seed = secrets.randbelow(2 ** 31) if seed is None else seed
    per_chain = math.ceil(n_samples / chains)

    where = resolve_device(device)
    energy = PottsEnergy.from_model(model, device=where)
    generator = torch.Generator(device=where).manual_seed(seed)
    x0 = torch.randint(model.n_states, (chains, length), generator=generator, device=where)
    kernel = GWGSampler() if sampler == "gwg" else GibbsSampler("systematic")
    samples, diagnostics = run_chains(kernel, energy, x0, per_chain, burn_in=burn_in,
                                      thin=thin, generator=generator, progress=progress)

    letters = np.array(list(model.alphabet))
    sequences = letters[samples.cpu().numpy()]                   # (per_chain, chains, L)
    steps = diagnostics.steps.tolist()
    with atomic_open(output) as stream:
        for k in range(n_samples):
            t, c = divmod(k, chains)
            stream.write(f">sample_{k + 1} chain={c} step={steps[t]} seed={seed}\n"
                         f"{''.join(sequences[t, c])}\n")
    ess = "n/a (fewer than 4 samples per chain)" if math.isnan(
        float(diagnostics.ess_per_chain.nanmean())) else f"{diagnostics.ess:.1f}"
    click.echo(f"sampled {n_samples} sequences of length {length} with {sampler} "
               f"({chains} chains, burn-in {burn_in}, thin {thin}, seed {seed}, {where}): "
               f"acceptance {diagnostics.acceptance_rate:.3f}, ESS(energy) {ess}, "
               f"{diagnostics.seconds:.1f} s -> {output}")
    if compare_msa is not None:
        pairs, sites = _agreement_with(compare_msa, model, samples.flatten(0, 1), theta)
        click.echo(f"samples vs {compare_msa}: Pearson of connected correlations C_ij "
                   f"{pairs:.3f}, of one-site frequencies {sites:.3f}")


def _agreement_with(msa_path: str, model, samples: torch.Tensor,
                    theta: float) -> tuple[float, float]:
    """Pearson (pairs, sites) of the samples' statistics vs the alignment's weighted ones."""
    from potts_gwg.fit.statistics import statistics_agreement
    from potts_gwg.io.msa import read_alignment
    from potts_gwg.weights import sequence_weights

    alignment = read_alignment(msa_path, query=model.meta.get("query_name"))
    if alignment.length != model.length:
        raise InputError(f"alignment has L={alignment.length} query columns but the model "
                         f"has L={model.length}", msa_path)
    data = torch.as_tensor(alignment.indices).long()
    weights = sequence_weights(data, model.n_states, theta)
    return statistics_agreement(samples.cpu(), data, model.n_states, weights)
