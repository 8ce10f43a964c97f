"""``potts-gwg contacts``: rank residue pairs by coupling strength, optionally score them."""

from __future__ import annotations

import click

from potts_gwg.errors import InputError
from potts_gwg.io.contact_formats import CONTACT_FORMATS
from potts_gwg.contacts_stage import contacts_stage


@click.command(name="contacts")
@click.argument("model", type=click.Path(readable=False))
@click.option("-o", "--output", type=click.Path(readable=False), metavar="FILE",
              help="Where to write the ranked pairs (default: standard output; with --pdb "
                   "or --json nothing is written unless -o is given; with -o - the report "
                   "goes to standard error; a name ending in .gz is gzip-compressed).")
@click.option("--format", "contact_format",
              type=click.Choice(CONTACT_FORMATS, case_sensitive=False), default="tsv",
              show_default=True,
              help="tsv: i j score; mat: L x L matrix as CCMpred's (shifted: lowest pair 0); "
                   "casp: CASP RR; csv: i,A_i,j,A_j,fn,cn (EVcouplings).")
@click.option("--no-apc", is_flag=True, help="Plain Frobenius norms, no APC.")
@click.option("--min-sep", type=click.IntRange(min=1), default=1, show_default=True,
              help="Only pairs with j - i >= K in the output (mat: closer pairs are 0).")
@click.option("--top", type=click.IntRange(min=1), metavar="N",
              help="Write only the N highest-scoring pairs (after --min-sep); precision and "
                   "--plot still use all pairs. Not with --format mat.")
@click.option("--pdb", "structure", type=click.Path(readable=False), metavar="STRUCTURE",
              help="PDB or mmCIF file (gzipped or not) of the query: report precision.")
@click.option("--chain", metavar="C", help="Chain of STRUCTURE (needed if it has several).")
@click.option("--plot", type=click.Path(readable=False), metavar="MAP.png",
              help="Draw predicted vs native contacts (needs --pdb); PNG, PDF or SVG by "
                   "the file's extension.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON summary (precision table, mapping) instead of text.")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress notes (the 'wrote FILE' lines); the structure mapping and "
                   "precision table of --pdb, and errors, are still printed.")
def command(model, output, contact_format, no_apc, min_sep, top, structure, chain, plot,
            as_json, quiet):
    """Predict contacts from the Potts MODEL file written by `potts-gwg fit`.

    Scores are Frobenius norms of the zero-sum-gauged couplings over the 20 amino acids,
    APC-corrected; positions are 1-based query columns. With --pdb, the query is aligned to
    the chain and precision at top L, L/2, L/5 is reported for |i - j| >= 6, 12, 24
    (contact: C-beta distance < 8 A, C-alpha for Gly).
    """
    if top is not None and contact_format == "mat":
        raise click.UsageError("--top picks ranked pairs; --format mat writes the whole L x L "
                               "matrix")
    if output is None and structure is None and not as_json:
        output = "-"
    to_stdout = output == "-"
    if to_stdout and as_json:
        raise InputError("-o - and --json would both write to standard output: give -o FILE "
                         "for the contacts")
    summary = contacts_stage(model, output, format=contact_format, apc=not no_apc,
                             min_separation=min_sep, structure=structure, chain=chain,
                             plot=plot, top=top)
    if min_sep >= summary.length and contact_format != "mat":
        click.echo(f"warning: no pair has |i-j| >= {min_sep} (L = {summary.length}): the "
                   "output lists none", err=True)
    if as_json:
        click.echo(summary.as_json())
        return
    # With the contacts on standard output, the report goes to stderr (a clean pipe).
    def report(text: str) -> None:
        click.echo(text, err=to_stdout)

    if summary.mapping is not None:
        mapping = summary.mapping
        chain = mapping["chain"].strip() or "(blank)"
        report(f"structure {mapping['structure']} chain {chain}: "
               f"{mapping['n_aligned']}/{summary.length} query positions aligned, "
               f"{mapping['n_with_coordinates']} with coordinates (C-beta, C-alpha for "
               f"Gly), identity {mapping['identity']:.3f}")
        report(_precision_text(summary.precision))
    if quiet:
        return
    if output is not None and not to_stdout:
        report(f"wrote {contact_format} contacts to {output}")
    if summary.plot is not None:
        report(f"wrote contact map to {summary.plot}")


def _precision_text(rows: list[dict]) -> str:
    """Precision as a small table: one line per minimum separation, columns L, L/2, L/5;
    a value over fewer than k pairs (too few of known distance) is marked '*'."""
    tops = list(dict.fromkeys(row["top"] for row in rows))
    lines = ["precision  " + "".join(f"{'top ' + top:>10}" for top in tops)]
    for separation in dict.fromkeys(row["min_separation"] for row in rows):
        cells = {row["top"]: row for row in rows if row["min_separation"] == separation}
        lines.append(f"|i-j|>={separation:<3}" + "".join(_cell(cells[top]) for top in tops))
    if any(row["precision"] != row["precision"] for row in rows):
        lines.append("n/a: no pair of known distance at that separation")
    if any(row["n_evaluated"] < row["k"] and row["precision"] == row["precision"]
           for row in rows):
        lines.append("*: over fewer than k pairs (too few pairs of known distance)")
    return "\n".join(lines)


def _cell(row: dict) -> str:
    if row["precision"] != row["precision"]:
        return f"{'n/a':>10}"
    if row["n_evaluated"] < row["k"]:
        return f"{row['precision']:>9.3f}*"
    return f"{row['precision']:>10.3f}"
