"""``potts-gwg fit``: fit a Potts model to an alignment and write the model file."""

from __future__ import annotations

import sys
import time

import click

from potts_gwg.fit.memory import format_bytes, parse_size
from potts_gwg.fit.plm import PlmSettings
from potts_gwg.pipeline import FIT_METHODS, FitOptions, fit_stage

from .options import device_option, msa_options, plm_options


class _ProgressPrinter:
    """Progress on stderr: a tqdm bar on a terminal, a line every few seconds otherwise."""

    def __init__(self, max_iterations: int, quiet: bool):
        self.quiet = quiet
        self.bar = None
        self.last_line = 0.0
        self.max_iterations = max_iterations
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=max_iterations, unit="it", desc="plm", file=sys.stderr)

    def __call__(self, iteration: int, objective: float, gradient_norm: float) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.n = min(iteration, self.max_iterations)
            self.bar.set_postfix(objective=f"{objective:.6g}", grad=f"{gradient_norm:.3g}")
            return
        now = time.monotonic()
        if now - self.last_line >= 2.0 or iteration == 0:
            self.last_line = now
            click.echo(f"iteration {iteration:4d}  objective {objective:.6g}  "
                       f"|gradient| {gradient_norm:.3g}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command(name="fit")
@click.argument("msa", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), metavar="MODEL.npz",
              help="Model file to write (default: <msa name>.npz in the current folder).")
@click.option("--method", type=click.Choice(FIT_METHODS), default="plm", show_default=True,
              help="plm = pseudo-likelihood, full batch, L-BFGS.")
@device_option
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed, recorded in the model file.")
@msa_options
@plm_options
@click.option("--lbfgs-history", type=click.IntRange(min=1), default=PlmSettings.history_size,
              show_default=True,
              help="L-BFGS memory (pairs of vectors kept, each the size of J): fewer saves "
                   "memory and time per iteration.")
@click.option("--max-memory", metavar="SIZE",
              help="Refuse fits estimated to need more than this (e.g. 8G); default: the "
                   "device's free memory.")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads for torch (default: torch's choice, all cores).")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
def command(msa, output, method, device, seed, msa_format, query, query_index, query_file,
            theta, lambda_h, lambda_j, max_iterations, tolerance, lbfgs_history, max_memory,
            threads, quiet):
    """Fit a Potts model to the alignment MSA and write it as an .npz model file.

    MSA may be a3m, a2m/FASTA, Stockholm or PSICOV .aln, gzipped or not. The model holds
    h (L, q), J (L, L, q, q), the alphabet and the settings (meta); read it with
    `potts-gwg contacts`.
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
    report = (lambda message: None) if quiet else (lambda message: click.echo(message, err=True))
    options = FitOptions(
        method=method, device=device, seed=seed, format=msa_format, query=query,
        query_index=query_index, query_file=query_file, theta=theta,
        plm=PlmSettings(lambda_h=lambda_h, lambda_j=lambda_j, max_iterations=max_iterations,
                        tolerance=tolerance, history_size=lbfgs_history),
        max_memory=parse_size(max_memory) if max_memory else None)
    progress = _ProgressPrinter(max_iterations, quiet)
    try:
        summary = fit_stage(msa, output, options, report=report, on_iteration=progress)
    finally:
        progress.close()
    state = "converged" if summary.converged else "stopped at --max-iterations"
    peak = f", peak GPU memory {format_bytes(summary.peak_memory_bytes)}" \
        if summary.peak_memory_bytes else ""
    click.echo(f"fit {method}: N={summary.n_sequences} L={summary.length} "
               f"Neff={summary.n_effective:.1f}, {summary.iterations} iterations ({state}), "
               f"objective {summary.objective:.6g}, {summary.seconds:.1f} s on "
               f"{summary.device}{peak} -> {summary.output}")
