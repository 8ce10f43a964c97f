"""The contacts stage behind ``potts-gwg contacts``: score a model file's pairs, write them
(tsv, mat, casp, csv), and, given a structure, the precision table and a contact-map picture.

It writes atomically and returns the paths, so a batch runner can call it and resume. Only
numpy and Biopython here, no torch: ``contacts`` starts in ~0.4 s instead of ~2.5 s
(benchmarks/README.md, "Command start-up").
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .atomic import atomic_path, atomic_text, output_target
from .contacts import contact_scores, frobenius_scores
from .errors import InputError
from .io.contact_formats import dump_contacts
from .io.model_file import load_model


# The model meta's keys that say which fit the scores come from (--json, CASP REMARK).
FIT_RECORD = ("method", "seed", "msa", "query_name")


def _provenance(model_path, meta: dict) -> tuple[str, ...]:
    """Where the scores come from, for the output's REMARK lines: the paths on lines of their
    own (a long one is wrapped; the short items are not split around it)."""
    fit = ", ".join(f"{key} {meta[key]}" for key in FIT_RECORD
                    if key != "msa" and meta.get(key) is not None)
    return (f"model {model_path}", *([f"fit {fit}"] if fit else []),
            *([f"msa {meta['msa']}"] if meta.get("msa") is not None else []),
            f"potts-gwg {__version__}")


@dataclass
class ContactsSummary:
    output: Path | None
    length: int
    precision: list[dict] | None = None
    mapping: dict | None = None
    plot: Path | None = None
    model: dict | None = None  # where the scores come from: the model file's fit record

    def as_json(self) -> str:
        return json.dumps({"output": None if self.output is None else str(self.output),
                           "length": self.length, "model": self.model,
                           "precision": None if self.precision is None else [
                               {**row, "precision": row["precision"]
                                if row["precision"] == row["precision"] else None}
                               for row in self.precision],  # NaN is not JSON: null
                           "structure_mapping": self.mapping,
                           "plot": None if self.plot is None else str(self.plot)}, indent=2)


def contacts_stage(model_path: str | os.PathLike, output: str | os.PathLike | None,
                   format: str = "tsv", apc: bool = True, min_separation: int = 1,
                   structure: str | os.PathLike | None = None, chain: str | None = None,
                   plot: str | os.PathLike | None = None,
                   top: int | None = None, target: str | None = None) -> ContactsSummary:
    """Score the model's pairs, write them (the ``top`` best, if given), and evaluate against
    a structure if given (over all pairs, whatever ``top``). ``target`` names the protein in
    CASP output and plot titles (default: the model file's name without suffix)."""
    target = target or Path(model_path).stem
    for path in (output, plot):
        if path is not None and str(path) != "-":
            output_target(path, inputs=(model_path, structure))  # refused before the work
    if output is not None and plot is not None and Path(output) == Path(plot):
        raise InputError("is given as both the contacts output and the --plot picture", plot)
    if plot is not None:
        from .plot import plot_format

        extension = plot_format(plot)  # an unknown picture format is refused before the work
    model = load_model(model_path)
    scores = contact_scores(model.J, model.alphabet, apc=apc)
    query_sequence = model.meta.get("query_sequence")
    summary = ContactsSummary(output=None, length=model.length, model={
        "path": str(model_path), "apc": apc,
        **{key: model.meta.get(key) for key in FIT_RECORD}})
    distances = None
    if structure is not None or plot is not None:
        if structure is None:
            raise InputError("--plot needs --pdb STRUCTURE to draw native contacts")
        if not isinstance(query_sequence, str) or len(query_sequence) != model.length:
            raise InputError("model meta has no query_sequence of length L, needed to map "
                             "the query onto the structure", model_path)
        from .evaluation import precision_table
        from .io.structure import NotTheQueryError, query_distances

        try:
            distances, mapping, residues = query_distances(query_sequence, structure, chain)
        except NotTheQueryError as error:
            name = model.meta.get("query_name")
            raise InputError(f"{error}; the model's query is the record {name!r}: if that is "
                             "not this protein, fit again with --query, --query-index or "
                             "--query-file") from None
        summary.precision = precision_table(scores, distances)
        summary.mapping = {"structure": str(structure), "chain": residues.chain_id,
                           "identity": round(mapping.identity, 4),
                           "coverage": round(mapping.coverage, 4),
                           "n_aligned": mapping.n_aligned,
                           # aligned and with a Cβ (Cα for Gly): the positions scored
                           "n_with_coordinates": int(np.isfinite(np.diag(distances)).sum())}
    figure = None
    if plot is not None:
        from .plot import contact_map_figure, save_figure

        figure = contact_map_figure(scores, distances, min_separation=max(6, min_separation),
                                    title=target)
    # The files are replaced together when both are written: a failure or Ctrl-C part way
    # leaves both as they were.
    with contextlib.ExitStack() as replaced_together:
        if output is not None:
            stream = sys.stdout if str(output) == "-" else replaced_together.enter_context(
                atomic_text(output))
            raw = frobenius_scores(model.J, model.alphabet) if format == "csv" else None
            dump_contacts(stream, format, scores, min_separation=min_separation,
                          sequence=query_sequence if isinstance(query_sequence, str) else None,
                          raw_scores=raw, target=target, apc=apc, top=top,
                          remarks=_provenance(model_path, model.meta))
            summary.output = Path(output)
        if figure is not None:
            save_figure(figure, replaced_together.enter_context(
                atomic_path(plot, suffix=f".{extension}")), extension)
            summary.plot = Path(plot)
    return summary
