"""Options shared by several commands, so they read and behave the same everywhere."""

from __future__ import annotations

import math
import secrets

import click

from potts_gwg.device import DEVICE_CHOICES
from potts_gwg.errors import InputError
from potts_gwg.io.msa import FORMAT_ALIASES, FORMATS
from potts_gwg.settings import (
    DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_THETA,
    MAX_SEED,
    PCD_INITS,
    PcdSettings,
    PlmSettings,
)

MSA_FORMATS = (*FORMATS, *FORMAT_ALIASES)  # what --format takes


def msa_options(function):
    """--format and the three ways to name the query row."""
    for option in reversed([
        click.option("--format", "msa_format", type=click.Choice(MSA_FORMATS, case_sensitive=False),
                     help="Alignment format; sniffed from the content when omitted."),
        click.option("--query", metavar="NAME",
                     help="Query = the record with this name; a Stockholm name may leave out "
                          "its /start-end (default: the first record)."),
        click.option("--query-index", type=click.IntRange(min=1), metavar="N",
                     help="Query = the N-th record (1-based)."),
        click.option("--query-file", type=click.Path(readable=False), metavar="FASTA",
                     help="Query = the aligned row in this file (same width as the MSA; "
                          "not itself a record of the MSA)."),
    ]):
        function = option(function)
    return function


def checked_seed(context, parameter, seed: int | None) -> int | None:
    """``--seed`` callback: 0..2^63 - 1, as every command records it (a larger one failed
    inside torch); a one-line error like the other bad numbers."""
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise InputError(f"--seed must lie in 0..{MAX_SEED}, got {seed}")
    return seed


def seed_option(help: str, default: int | None = None):
    """``--seed`` as every command takes it: the range in the help, checked by
    :func:`checked_seed`."""
    return click.option("--seed", type=int, callback=checked_seed, default=default,
                        show_default=default is not None, metavar="0..2^63-1", help=help)


def chosen_seed(seed: int | None) -> int:
    """``seed``, or one drawn at random when none was given (the command records it)."""
    return secrets.randbelow(2 ** 31) if seed is None else seed


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses nan and ±inf: click's accepts them (nan passes
    every bound), and the settings then failed with an internal error (exit 70) instead of
    this usage error (exit 2)."""

    def convert(self, value, parameter, context):
        number = super().convert(value, parameter, context)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", parameter, context)
        return number


class DeviceName(click.ParamType):
    """auto, cpu, cuda or cuda:N (any N: whether it exists is checked when it is used)."""

    name = "device"

    def convert(self, value, parameter, context):
        text = str(value).strip().lower()
        index = text.partition(":")[2]
        if text in DEVICE_CHOICES or (text.startswith("cuda:") and index.isdigit()):
            return text
        self.fail(f"{value!r} is not a device: use auto, cpu, cuda or cuda:N", parameter,
                  context)


def device_option(function):
    return click.option(
        "--device", default="auto", show_default=True, type=DeviceName(),
        metavar="auto|cpu|cuda[:N]",
        help="Where to compute; auto takes a GPU when present and says so.")(function)


def _set_threads(context, parameter, threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def threads_option(function):
    """``--threads N``: torch's CPU threads for this command (a shared machine's share)."""
    return click.option(
        "--threads", type=click.IntRange(min=1), expose_value=False, callback=_set_threads,
        help="CPU threads for torch (default: torch's choice, all cores).")(function)


def plm_options(function, per_method: bool = False):
    """The sequence-weight and PLM settings shared by ``fit`` and ``batch``.

    ``per_method``: --max-iterations and --lambda-j default to None, meaning the chosen
    method's default (``fit`` offers PCD methods whose defaults differ from PLM's).
    """
    if per_method:
        iterations_help = (f"Iterations at most: L-BFGS for plm (default "
                           f"{PlmSettings.max_iterations}), parameter updates for gwg/gibbs "
                           f"(default {PcdSettings.max_iterations}).")
        lambda_j_help = (f"L2 penalty on the couplings J, per (L - 1) as in CCMpred "
                         f"(default {PlmSettings.lambda_j} for plm, {PcdSettings.lambda_j} "
                         f"for gwg/gibbs).")
    else:
        iterations_help = "L-BFGS iterations at most."
        lambda_j_help = "L2 penalty on the couplings J, per (L - 1) as in CCMpred."
    for option in reversed([
        click.option("--theta", type=FiniteFloatRange(0.0, 1.0, min_open=True),
                     default=DEFAULT_THETA, show_default=True,
                     help="Identity threshold of the sequence weights."),
        click.option("--lambda-h", type=FiniteFloatRange(min=0.0), default=0.01,
                     show_default=True, help="L2 penalty on the fields h."),
        click.option("--lambda-j", type=FiniteFloatRange(min=0.0),
                     default=None if per_method else PlmSettings.lambda_j,
                     show_default=not per_method, help=lambda_j_help),
        click.option("--max-iterations", type=click.IntRange(min=1),
                     default=None if per_method else PlmSettings.max_iterations,
                     show_default=not per_method, help=iterations_help),
        click.option("--tolerance", type=FiniteFloatRange(min=0.0),
                     default=PlmSettings.tolerance, show_default=True,
                     help="plm: stop when the objective fell by less than this fraction over "
                          "the last 5 iterations (CCMpred's rule)."),
    ]):
        function = option(function)
    return function


def method_settings(method: str, lambda_h: float, lambda_j: float | None,
                    max_iterations: int | None, tolerance: float, chains: int,
                    steps: int | None, learning_rate: float, lambda_group: float,
                    target_pearson: float, max_time: float | None, history_size: int = 5):
    """(PlmSettings, PcdSettings) from the options of ``plm_options(per_method=True)`` and
    ``pcd_options``: --lambda-j and --max-iterations go to the chosen method; the PLM start of
    a gwg/gibbs fit keeps PLM's defaults."""
    pcd = method != "plm"
    plm_defaults, pcd_defaults = PlmSettings(), PcdSettings()
    plm = PlmSettings(
        lambda_h=lambda_h,
        lambda_j=plm_defaults.lambda_j if lambda_j is None or pcd else lambda_j,
        max_iterations=max_iterations if max_iterations and not pcd
        else plm_defaults.max_iterations,
        tolerance=tolerance, history_size=history_size)
    pcd_settings = PcdSettings(
        sampler=method if pcd else "gwg", n_chains=chains, steps=steps,
        learning_rate=learning_rate, lambda_h=lambda_h,
        lambda_j=pcd_defaults.lambda_j if lambda_j is None else lambda_j,
        lambda_group=lambda_group,
        max_iterations=max_iterations or pcd_defaults.max_iterations, max_time=max_time,
        target_pearson=None if target_pearson >= 1 else target_pearson)
    return plm, pcd_settings


def refuse_pcd_options_for_plm(method: str, names: tuple[str, ...]) -> None:
    """Of the gwg/gibbs-only parameters ``names``, one the user typed (not a default) with
    --method plm is an error, not silently ignored."""
    if method != "plm":
        return
    context = click.get_current_context()
    typed = [f"--{name.replace('_', '-')}" for name in names
             if context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
    if typed:
        raise InputError(f"{', '.join(typed)}: only for --method gwg or gibbs (this is a plm "
                         "fit)")


# The parameters of pcd_options(batch=True); fit adds checkpoint_interval and resume.
PCD_ONLY = ("init", "chains", "steps", "learning_rate", "lambda_group", "target_pearson",
            "max_time")


def pcd_options(function=None, *, batch: bool = False):
    """Settings of the maximum-likelihood (gwg/gibbs) fits. ``batch``: without --init FILE,
    --checkpoint-interval and --resume (a batch resumes families and their checkpoints
    itself)."""
    if function is None:
        return lambda decorated: pcd_options(decorated, batch=batch)

    defaults = PcdSettings()
    options = [
        click.option("--init", default="plm", show_default=True,
                     metavar="|".join(PCD_INITS) + "|MODEL.npz",
                     help="gwg/gibbs: start from the PLM fit, from the independent-site model "
                          "(J = 0), or from a model file fitted to the same query columns "
                          "(e.g. an earlier `fit --method plm`)."),
        click.option("--chains", type=click.IntRange(min=2), default=defaults.n_chains,
                     show_default=True, help="gwg/gibbs: persistent chains."),
        click.option("--steps", type=click.IntRange(min=1),
                     help="gwg/gibbs: sampler steps (one site per chain each) per update "
                          "[default: L/10, at least 10]."),
        click.option("--learning-rate", type=FiniteFloatRange(min=0.0, min_open=True),
                     default=defaults.learning_rate, show_default=True,
                     help="gwg/gibbs: step size of the gradient ascent."),
        click.option("--lambda-group", type=FiniteFloatRange(min=0.0),
                     default=defaults.lambda_group, show_default=True,
                     help="gwg/gibbs: group-L1 penalty on each pair's coupling block."),
        click.option("--target-pearson", type=FiniteFloatRange(0.0, 1.0),
                     default=defaults.target_pearson, show_default=True,
                     help="gwg/gibbs: stop when the Pearson correlation of model and data "
                          "connected correlations (chains' statistics averaged over 10 "
                          "updates, after 10 sweeps) reaches this (1 = never)."),
        click.option("--max-time", type=FiniteFloatRange(min=0.0), metavar="SECONDS",
                     help="gwg/gibbs: stop after this much fitting time (across resumes)."),
    ]
    if batch:
        options[0] = click.option("--init", type=click.Choice(PCD_INITS), default="plm",
                                  show_default=True,
                                  help="gwg/gibbs: start from the PLM fit or from the "
                                       "independent-site model (J = 0).")
    else:
        options += [
            click.option("--checkpoint-interval", type=FiniteFloatRange(min=0.0),
                         default=DEFAULT_CHECKPOINT_INTERVAL, show_default=True,
                         metavar="SECONDS",
                         help="gwg/gibbs: write OUTPUT's .checkpoint.npz this often (0: "
                              "never)."),
            click.option("--resume", is_flag=True,
                         help="gwg/gibbs: continue from OUTPUT's .checkpoint.npz if there is "
                              "one (same MSA and settings; stop criteria may change)."),
        ]
    for option in reversed(options):
        function = option(function)
    return function
