"""``potts-gwg msa-info``: what the reader made of an alignment, before any fit is run."""

from __future__ import annotations

import json

import click

from potts_gwg.alphabet import PROTEIN_ALPHABET
from potts_gwg.io.msa import read_alignment
from potts_gwg.settings import DEFAULT_THETA

from .options import FiniteFloatRange, msa_options, threads_option


@click.command(name="msa-info")
@click.argument("msa", type=click.Path(readable=False))
@msa_options
@click.option("--theta", type=FiniteFloatRange(0, 1, min_open=True), default=DEFAULT_THETA,
              show_default=True,
              help="Identity threshold of the sequence weights behind Neff.")
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bars (they appear on stderr only when it is a terminal).")
def command(msa, msa_format, query, query_index, query_file, theta, as_json, quiet):
    """Summarise the alignment MSA as the other commands will see it.

    Reports the format, the number of sequences N, the number of query columns L, the MSA
    width after insert removal, the insert handling applied, Neff (sum of sequence weights at
    identity >= THETA) and Neff/L, the gap fraction, how many non-standard letters
    (B, J, O, U, X, Z, *) were read as gaps, and the query.

    The query is the first record unless --query, --query-index or --query-file (at most one)
    says otherwise. Formats: a3m, fasta/a2m, stockholm, aln (PSICOV), clustal, optionally
    gzipped.
    """
    # Here, not at the top: the weights load torch (~2 s), which --help does not need.
    from potts_gwg.weights import effective_number, sequence_weights, shallow_alignment_note

    if sum(option is not None for option in (query, query_index, query_file)) > 1:
        raise click.UsageError("give at most one of --query, --query-index, --query-file")
    alignment = read_alignment(msa, format=msa_format, query=query, query_index=query_index,
                               query_file=query_file, progress=False if quiet else None)
    n_effective = effective_number(
        sequence_weights(alignment.indices, len(PROTEIN_ALPHABET), theta,
                         progress=False if quiet else None))
    report = {
        "path": alignment.path,
        "format": alignment.format,
        "n_sequences": alignment.n_sequences,
        "length": alignment.length,
        "msa_width": alignment.msa_width,
        "insert_mode": alignment.insert_mode,
        "theta": theta,
        "n_effective": n_effective,
        "n_effective_per_length": n_effective / alignment.length,
        "gap_fraction": alignment.gap_fraction(),
        "n_nonstandard": alignment.n_nonstandard,
        "query": alignment.query_name,
        "query_index": None if alignment.query_record is None else alignment.query_record + 1,
        "query_sequence": alignment.query_sequence,
    }
    if as_json:
        click.echo(json.dumps(report))
        return
    query_source = ("from " + query_file if alignment.query_record is None
                    else f"record {alignment.query_record + 1}")
    rows = [
        ("file", alignment.path),
        ("format", alignment.format),
        ("sequences (N)", str(alignment.n_sequences)),
        ("query columns (L)", str(alignment.length)),
        ("MSA width", str(alignment.msa_width)),
        ("insert mode", alignment.insert_mode),
        (f"Neff (theta {theta:g})", f"{n_effective:.1f}"),
        ("Neff / L", f"{report['n_effective_per_length']:.2f}"),
        ("gap fraction", f"{report['gap_fraction']:.3f}"),
        ("letters read as gap", str(alignment.n_nonstandard)),
        ("query", f"{alignment.query_name} ({query_source})"),
    ]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")
    shallow = shallow_alignment_note(n_effective, alignment.length)
    if shallow is not None:
        click.echo(f"warning: {shallow}", err=True)
