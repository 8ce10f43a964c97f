"""``potts-gwg sample``: draw sequences from a Potts model file with GWG or Gibbs chains."""

from __future__ import annotations

import math
from pathlib import Path

from typing import TYPE_CHECKING

import click
import numpy as np

from potts_gwg.atomic import atomic_text, output_target
from potts_gwg.device import resolve_device
from potts_gwg.errors import InputError
from potts_gwg.io.model_file import load_model
from potts_gwg.io.msa import UnknownQueryError
from potts_gwg.settings import DEFAULT_THETA

from .options import (
    DeviceName,
    FiniteFloatRange,
    chosen_seed,
    msa_options,
    seed_option,
    threads_option,
)

if TYPE_CHECKING:
    import torch


@click.command(name="sample")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path, readable=False))
@click.option("-n", "--n-samples", "n_samples", type=int, required=True,
              help="Number of sequences to write.")
@click.option("-o", "--output", type=click.Path(path_type=Path, readable=False), required=True,
              help="FASTA file to write (replaced only when sampling succeeds; - for "
                   "standard output; a name ending in .gz is gzip-compressed).")
@click.option("--sampler", type=click.Choice(["gwg", "gibbs"]), default="gwg", show_default=True,
              help="gwg: Gibbs-With-Gradients, one proposed change per step; gibbs: "
                   "systematic-scan Gibbs, one site redrawn per step.")
@click.option("--chains", type=int, default=None,
              help="Independent chains run in parallel; the N samples are collected from "
                   "all chains at once, ceil(N / chains) rounds (the last round may take "
                   "only some chains).  [default: min(N, 100)]")
@click.option("--burn-in", type=int, default=None,
              help="Steps discarded at the start; a chain's first sample is taken at step "
                   "burn-in + thin.  [default: 10·L]")
@click.option("--thin", type=int, default=None,
              help="Steps between a chain's samples.  [default: L, one sweep]")
@seed_option("Random seed; the same seed on the same device gives the same "
              "sequences.  [default: drawn at random, and recorded]")
@click.option("--device", default="auto", show_default=True, type=DeviceName(),
              metavar="auto|cpu|cuda[:N]",
              help="Where the chains run; auto takes a CUDA GPU when there is one.")
@threads_option
@click.option("--compare-msa", type=click.Path(readable=False), metavar="MSA",
              help="Also report how well the samples reproduce this alignment's weighted "
                   "one-site frequencies and pair connected correlations (Pearson); its "
                   "query is the record named in the model's meta unless --query, "
                   "--query-index or --query-file says otherwise. Read before sampling.")
@msa_options
@click.option("--theta", type=FiniteFloatRange(0.0, 1.0, min_open=True), default=DEFAULT_THETA,
              show_default=True, help="Identity threshold of the --compare-msa weights.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bar on stderr (only when it is a terminal).")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress output (no bar, no note of the device auto chose); the "
                   "summary, the --compare-msa line and errors are still printed.")
def command(model_path: Path, n_samples: int, output: Path, sampler: str, chains: int | None,
            burn_in: int | None, thin: int | None, seed: int | None, device: str,
            compare_msa: str | None, msa_format: str | None, query: str | None,
            query_index: int | None, query_file: str | None, theta: float,
            progress: bool, quiet: bool) -> None:
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
    # Here, not at the top: torch takes ~2 s to load, which --help and usage errors skip.
    import torch

    from potts_gwg.engine import GibbsSampler, GWGSampler, PottsEnergy, run_chains

    for name, value, least in (("-n", n_samples, 1), ("--chains", chains, 1),
                               ("--burn-in", burn_in, 0), ("--thin", thin, 1)):
        if value is not None and value < least:
            raise InputError(f"{name} must be at least {least}, got {value}")
    progress_source = click.get_current_context().get_parameter_source("progress")
    if quiet and progress and progress_source == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("-q/--quiet and --progress contradict each other")
    to_stdout = str(output) == "-"
    if not to_stdout:
        output_target(output, inputs=(model_path, compare_msa, query_file))  # before sampling
    model = load_model(model_path)
    length = model.length
    if compare_msa is not None:  # a bad alignment is refused before sampling, not after
        if query is None and query_index is None and query_file is None:
            # The fit's own query: its query file (if it had one and it is still there),
            # else its record's name
            query_file = model.meta.get("query_file")
            if query_file is None or not Path(query_file).is_file():
                query_file, query = None, model.meta.get("query_name")
            query_of_model = query
        else:
            query_of_model = None
        try:
            data, data_weights = _weighted_alignment(compare_msa, model, theta, msa_format,
                                                     query, query_index, query_file)
        except UnknownQueryError as error:
            if query_of_model is None:
                raise
            raise InputError(f"{error} (query {query_of_model!r} is the model's, from its fit; "
                             "name this alignment's with --query, --query-index or "
                             "--query-file)") from None
    chains = chains or min(n_samples, 100)
    burn_in = 10 * length if burn_in is None else burn_in
    thin = length if thin is None else thin
    seed = chosen_seed(seed)
    per_chain = math.ceil(n_samples / chains)

    where = resolve_device(device, announce=(lambda message: None) if quiet else None)
    energy = PottsEnergy.from_model(model, device=where)
    generator = torch.Generator(device=where).manual_seed(seed)
    x0 = torch.randint(model.n_states, (chains, length), generator=generator, device=where)
    kernel = GWGSampler() if sampler == "gwg" else GibbsSampler("systematic")
    samples, diagnostics = run_chains(kernel, energy, x0, per_chain, burn_in=burn_in,
                                      thin=thin, generator=generator,
                                      progress=progress and not quiet)

    letters = np.array(list(model.alphabet))
    sequences = letters[samples.cpu().numpy()]                   # (per_chain, chains, L)
    steps = diagnostics.steps.tolist()
    records = (f">sample_{k + 1} chain={k % chains} step={steps[k // chains]} seed={seed}\n"
               f"{''.join(sequences[k // chains, k % chains])}\n" for k in range(n_samples))
    if to_stdout:
        click.echo("".join(records), nl=False)
    else:
        with atomic_text(output) as stream:
            stream.writelines(records)
    ess = "n/a (fewer than 4 samples per chain)" if math.isnan(
        float(diagnostics.ess_per_chain.nanmean())) else f"{diagnostics.ess:.1f}"
    # The summary goes to stderr when the samples go to stdout.
    click.echo(f"sampled {n_samples} sequence{'s' if n_samples != 1 else ''} of length "
               f"{length} with {sampler} "
               f"({chains} chains, burn-in {burn_in}, thin {thin}, seed {seed}, {where}): "
               f"acceptance {diagnostics.acceptance_rate:.3f}, ESS(energy) {ess}, "
               f"{diagnostics.seconds:.1f} s -> {'standard output' if to_stdout else output}",
               err=to_stdout)
    if compare_msa is not None:
        from potts_gwg.fit.statistics import statistics_agreement

        pairs, sites = statistics_agreement(samples.flatten(0, 1).cpu(), data,
                                            model.n_states, data_weights)
        click.echo(f"samples vs {compare_msa}: Pearson of connected correlations C_ij "
                   f"{pairs:.3f}, of one-site frequencies {sites:.3f}", err=to_stdout)


def _weighted_alignment(msa_path: str, model, theta: float, msa_format: str | None,
                        query: str | None, query_index: int | None,
                        query_file: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The --compare-msa alignment's query columns ``(N, L)`` and weights ``(N,)``."""
    import torch

    from potts_gwg.alphabet import PROTEIN_ALPHABET
    from potts_gwg.io.msa import read_alignment
    from potts_gwg.weights import sequence_weights

    if model.alphabet != PROTEIN_ALPHABET:
        raise InputError(f"--compare-msa reads protein alignments; the model's alphabet is "
                         f"{model.alphabet!r}", msa_path)
    alignment = read_alignment(msa_path, format=msa_format, query=query,
                               query_index=query_index, query_file=query_file)
    if alignment.length != model.length:
        raise InputError(f"alignment has L={alignment.length} query columns but the model "
                         f"has L={model.length}", msa_path)
    data = torch.as_tensor(alignment.indices).long()
    return data, sequence_weights(data, model.n_states, theta)
