"""``potts-gwg fit``: fit a Potts model to an alignment and write the model file."""

from __future__ import annotations

import functools
import math
import sys
import time

from typing import TYPE_CHECKING

import click

from potts_gwg.settings import FIT_METHODS, FitOptions, PlmSettings

from .options import (
    PCD_ONLY,
    device_option,
    method_settings,
    msa_options,
    pcd_options,
    plm_options,
    refuse_pcd_options_for_plm,
    seed_option,
    threads_option,
)

if TYPE_CHECKING:
    from potts_gwg.fit.pcd import PcdProgress


class _ProgressPrinter:
    """Progress on stderr: a tqdm bar on a terminal, a line every few seconds otherwise.

    Called as ``(iteration, objective, gradient_norm)`` by PLM and with a
    :class:`PcdProgress` by gwg/gibbs; a PLM start of a PCD fit gets its own bar first.
    """

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None
        self.phase = None
        self.last_line = 0.0

    def _show(self, phase: str, total: int, iteration: int, fields: dict[str, str]) -> None:
        if self.quiet:
            return
        if sys.stderr.isatty():
            if self.phase != phase:
                self.close()
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="it", desc=phase, file=sys.stderr)
                self.phase = phase
            self.bar.n = min(iteration, total)
            self.bar.set_postfix(fields)
            return
        now = time.monotonic()
        if now - self.last_line >= 2.0 or self.phase != phase:
            self.last_line, self.phase = now, phase
            details = "  ".join(f"{key} {value}" for key, value in fields.items())
            click.echo(f"{phase} iteration {iteration:5d}  {details}", err=True)

    def plm(self, total: int):
        def report(iteration: int, objective: float, gradient_norm: float) -> None:
            self._show("plm", total, iteration, {"objective": f"{objective:.6g}",
                                                 "|gradient|": f"{gradient_norm:.3g}"})
        return report

    def pcd(self, method: str, total: int):
        def report(progress: PcdProgress) -> None:
            checked = not math.isnan(progress.pearson_pairs)  # first check: update 10
            self._show(method, total, progress.iteration, {
                "pearson C": f"{progress.pearson_pairs:.3f}" if checked else "-",
                "pearson f1": f"{progress.pearson_sites:.3f}" if checked else "-",
                "log10 acceptance": f"{math.log10(max(progress.acceptance, 1e-12)):.2f}",
                "s": f"{progress.seconds:.0f}"})
        return report

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@click.command(name="fit")
@click.argument("msa", type=click.Path(readable=False))
@click.option("-o", "--output", type=click.Path(readable=False), metavar="MODEL.npz",
              help="Model file to write (default: <msa name>.npz in the current folder).")
@click.option("--method", type=click.Choice(FIT_METHODS), default="plm", show_default=True,
              help="plm = pseudo-likelihood, full batch, L-BFGS (fast, the standard). "
                   "gwg / gibbs = maximum likelihood by persistent contrastive divergence "
                   "with Gibbs-with-Gradients or Gibbs chains (slower; see README for when "
                   "it pays off).")
@device_option
@seed_option("Random seed, recorded in the model file.", default=0)
@msa_options
@functools.partial(plm_options, per_method=True)
@pcd_options
@click.option("--lbfgs-history", type=click.IntRange(min=1), default=PlmSettings.history_size,
              show_default=True,
              help="L-BFGS memory (pairs of vectors kept, each the size of J): fewer saves "
                   "memory and time per iteration.")
@click.option("--max-memory", metavar="SIZE",
              help="Refuse fits estimated to need more than this (binary units: 8G = 8 GiB, "
                   "also 512M, 1.5GiB or bytes); default: the device's free memory.")
@threads_option
@click.option("-q", "--quiet", is_flag=True,
              help="No progress output (warnings about the result, such as a shallow "
                   "alignment, and how to continue an interrupted gwg/gibbs fit still print).")
def command(msa, output, method, device, seed, msa_format, query, query_index, query_file,
            theta, lambda_h, lambda_j, max_iterations, tolerance, init, chains, steps,
            learning_rate, lambda_group, target_pearson, max_time, checkpoint_interval, resume,
            lbfgs_history, max_memory, quiet):
    """Fit a Potts model to the alignment MSA and write it as an .npz model file.

    MSA may be a3m, a2m/FASTA, Stockholm, Clustal or PSICOV .aln, gzipped or not. The model
    holds h (L, q), J (L, L, q, q), the alphabet and the settings (meta); read it with
    `potts-gwg contacts`.
    """
    # Here, not at the top: they load torch (~2 s), which --help and usage errors do not need.
    from potts_gwg.fit.memory import format_bytes, parse_size
    from potts_gwg.pipeline import fit_stage

    refuse_pcd_options_for_plm(method, (*PCD_ONLY, "checkpoint_interval", "resume"))
    report = (lambda message: None) if quiet else (lambda message: click.echo(message, err=True))
    pcd = method != "plm"
    plm_settings, pcd_settings = method_settings(
        method, lambda_h, lambda_j, max_iterations, tolerance, chains, steps, learning_rate,
        lambda_group, target_pearson, max_time, history_size=lbfgs_history)
    options = FitOptions(
        method=method, device=device, seed=seed, format=msa_format, query=query,
        query_index=query_index, query_file=query_file, theta=theta, plm=plm_settings,
        max_memory=parse_size(max_memory) if max_memory else None, pcd=pcd_settings,
        init=init, checkpoint_interval=checkpoint_interval or None, resume=resume,
        progress=False if quiet else None)
    progress = _ProgressPrinter(quiet)
    try:
        summary = fit_stage(msa, output, options, report=report,
                            warn=lambda message: click.echo(message, err=True),
                            on_iteration=progress.plm(plm_settings.max_iterations),
                            on_pcd_iteration=progress.pcd(method, pcd_settings.max_iterations))
    finally:
        progress.close()
    if pcd:
        state = {"target_pearson": "reached --target-pearson",
                 "max_iterations": "stopped at --max-iterations",
                 "max_time": "stopped at --max-time"}[summary.stop_reason]
        pairs, sites = (f"{value:.3f}" if value is not None else "n/a"
                        for value in (summary.pearson_pairs, summary.pearson_sites))
        fit_details = f"{summary.iterations} updates ({state}), Pearson C {pairs}, f1 {sites}"
    else:
        state = "converged" if summary.converged else "stopped at --max-iterations"
        fit_details = (f"{summary.iterations} iterations ({state}), objective "
                       f"{summary.objective:.6g}")
    peak = (f", peak GPU memory {format_bytes(summary.peak_memory_bytes)} (reserved "
            f"{format_bytes(summary.peak_reserved_bytes)})") if summary.peak_memory_bytes else ""
    click.echo(f"fit {method}: N={summary.n_sequences} L={summary.length} "
               f"Neff={summary.n_effective:.1f}, {fit_details}, {summary.seconds:.1f} s on "
               f"{summary.device}{peak} -> {summary.output}")
