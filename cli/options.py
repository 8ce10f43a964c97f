"""Options shared by several commands, so they read and behave the same everywhere."""

from __future__ import annotations

import click

from potts_gwg.device import DEVICE_CHOICES

MSA_FORMATS = ("a3m", "fasta", "a2m", "stockholm", "aln")


def msa_options(function):
    """--format and the three ways to name the query row."""
    for option in reversed([
        click.option("--format", "msa_format", type=click.Choice(MSA_FORMATS),
                     help="Alignment format; sniffed from the content when omitted."),
        click.option("--query", metavar="NAME",
                     help="Query = the record with this name (default: the first record)."),
        click.option("--query-index", type=click.IntRange(min=1), metavar="N",
                     help="Query = the N-th record (1-based)."),
        click.option("--query-file", type=click.Path(dir_okay=False), metavar="FASTA",
                     help="Query = the aligned row in this file (same width as the MSA; "
                          "not itself a record of the MSA)."),
    ]):
        function = option(function)
    return function


def device_option(function):
    return click.option(
        "--device", default="auto", show_default=True,
        type=click.Choice(DEVICE_CHOICES + tuple(f"cuda:{index}" for index in range(16))),
        metavar="auto|cpu|cuda[:N]",
        help="Where to compute; auto takes a GPU when present and says so.")(function)


def plm_options(function):
    """The sequence-weight and PLM settings shared by ``fit`` and ``batch``."""
    from potts_gwg.fit.plm import PlmSettings

    for option in reversed([
        click.option("--theta", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.8,
                     show_default=True, help="Identity threshold of the sequence weights."),
        click.option("--lambda-h", type=click.FloatRange(min=0.0), default=0.01,
                     show_default=True, help="L2 penalty on the fields h."),
        click.option("--lambda-j", type=click.FloatRange(min=0.0), default=0.2,
                     show_default=True,
                     help="L2 penalty on the couplings J, per (L - 1) as in CCMpred."),
        click.option("--max-iterations", type=click.IntRange(min=1),
                     default=PlmSettings.max_iterations, show_default=True,
                     help="L-BFGS iterations at most."),
        click.option("--tolerance", type=click.FloatRange(min=0.0),
                     default=PlmSettings.tolerance, show_default=True,
                     help="Stop when the objective fell by less than this fraction over the "
                          "last 5 iterations (CCMpred's rule)."),
    ]):
        function = option(function)
    return function
