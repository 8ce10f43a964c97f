"""Stage functions behind the commands: each does one job end to end and returns its outputs.

``fit_stage`` reads an alignment and writes a model file; ``contacts_stage`` scores a model
and writes the ranked pairs (and, given a structure, the precision table and a picture).
Both write atomically and return paths, so a batch runner can call them and resume.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import __version__
from .alphabet import PROTEIN_ALPHABET
from .contacts import contact_scores, frobenius_scores
from .device import device_description, resolve_device
from .errors import InputError
from .fit.memory import check_plm_fits
from .fit.plm import PlmSettings, fit_plm
from .io.contact_formats import write_contacts
from .io.model_file import PottsModel, load_model, save_model
from .io.msa import read_alignment
from .weights import effective_number, sequence_weights

FIT_METHODS = ("plm",)
Reporter = Callable[[str], None]


@dataclass
class FitOptions:
    """Everything ``fit`` needs besides the alignment path; recorded in the model's meta."""

    method: str = "plm"
    device: str = "auto"
    seed: int = 0
    format: str | None = None
    query: str | None = None
    query_index: int | None = None
    query_file: str | None = None
    theta: float = 0.8
    plm: PlmSettings = field(default_factory=PlmSettings)
    max_memory: int | None = None


@dataclass
class FitSummary:
    output: Path
    n_sequences: int
    length: int
    n_effective: float
    iterations: int
    converged: bool
    objective: float
    seconds: float
    device: str
    peak_memory_bytes: int | None


def default_model_path(msa_path: str | os.PathLike) -> Path:
    """``family.a3m.gz`` -> ``family.npz`` in the current folder."""
    name = Path(msa_path).name
    if name.endswith(".gz"):
        name = name[:-3]
    stem = Path(name).stem or "model"
    return Path(f"{stem}.npz")


def fit_stage(msa_path: str | os.PathLike, output: str | os.PathLike | None,
              options: FitOptions, report: Reporter = lambda message: None,
              on_iteration=None) -> FitSummary:
    """Read, weight, fit and write the model file; return what was done."""
    if options.method not in FIT_METHODS:
        raise InputError(f"--method {options.method}: unknown fit method "
                         f"(available: {', '.join(FIT_METHODS)})")
    start = time.perf_counter()
    device = resolve_device(options.device, announce=report)
    torch.manual_seed(options.seed)
    alignment = read_alignment(msa_path, format=options.format, query=options.query,
                               query_index=options.query_index, query_file=options.query_file)
    n_states = len(PROTEIN_ALPHABET)
    check_plm_fits(alignment.n_sequences, alignment.length, n_states,
                   options.plm.history_size, device, options.max_memory)
    report(f"read {msa_path}: {alignment.format}, N={alignment.n_sequences}, "
           f"L={alignment.length}, query {alignment.query_name}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    weights = sequence_weights(alignment.indices, n_states, options.theta, device=device)
    n_effective = effective_number(weights)
    report(f"weights: Neff={n_effective:.1f} (theta={options.theta}), "
           f"Neff/L={n_effective / alignment.length:.2f}")
    result = fit_plm(alignment.indices, weights, n_states, options.plm, device=device,
                     on_iteration=on_iteration)
    meta = {
        "method": options.method,
        "version": __version__,
        "seed": options.seed,
        "hyperparameters": {"theta": options.theta, **options.plm.as_dict()},
        "msa": str(msa_path),
        "msa_format": alignment.format,
        "query_name": alignment.query_name,
        "query_sequence": alignment.query_sequence,
        "n_sequences": alignment.n_sequences,
        "n_effective": round(n_effective, 4),
        "length": alignment.length,
        "n_nonstandard": alignment.n_nonstandard,
        "iterations": result.iterations,
        "converged": result.converged,
        "objective": result.objective,
    }
    output = Path(output) if output is not None else default_model_path(msa_path)
    save_model(output, PottsModel(h=result.h, J=result.J, alphabet=PROTEIN_ALPHABET, meta=meta))
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return FitSummary(output=output, n_sequences=alignment.n_sequences,
                      length=alignment.length, n_effective=n_effective,
                      iterations=result.iterations, converged=result.converged,
                      objective=result.objective, seconds=time.perf_counter() - start,
                      device=device_description(device), peak_memory_bytes=peak)


@dataclass
class ContactsSummary:
    output: Path | None
    length: int
    precision: list[dict] | None = None
    mapping: dict | None = None
    plot: Path | None = None

    def as_json(self) -> str:
        return json.dumps({"output": None if self.output is None else str(self.output),
                           "length": self.length, "precision": self.precision,
                           "structure_mapping": self.mapping,
                           "plot": None if self.plot is None else str(self.plot)}, indent=2)


def contacts_stage(model_path: str | os.PathLike, output: str | os.PathLike | None,
                   format: str = "tsv", apc: bool = True, min_separation: int = 1,
                   structure: str | os.PathLike | None = None, chain: str | None = None,
                   plot: str | os.PathLike | None = None) -> ContactsSummary:
    """Score the model's pairs, write them, and evaluate against a structure if given."""
    model = load_model(model_path)
    scores = contact_scores(model.J, model.alphabet, apc=apc)
    query_sequence = model.meta.get("query_sequence")
    summary = ContactsSummary(output=None, length=model.length)
    distances = None
    if structure is not None or plot is not None:
        if structure is None:
            raise InputError("--plot needs --pdb STRUCTURE to draw native contacts")
        if not isinstance(query_sequence, str) or len(query_sequence) != model.length:
            raise InputError("model meta has no query_sequence of length L, needed to map "
                             "the query onto the structure", model_path)
        from .evaluation import precision_table
        from .io.structure import query_distances

        distances, mapping, residues = query_distances(query_sequence, structure, chain)
        summary.precision = precision_table(scores, distances)
        summary.mapping = {"structure": str(structure), "chain": residues.chain_id,
                           "identity": round(mapping.identity, 4),
                           "coverage": round(mapping.coverage, 4),
                           "n_aligned": mapping.n_aligned}
    if output is not None:
        raw = frobenius_scores(model.J, model.alphabet) if format == "csv" else None
        write_contacts(output, format, scores, min_separation=min_separation,
                       sequence=query_sequence if isinstance(query_sequence, str) else None,
                       raw_scores=raw, target=Path(model_path).stem)
        summary.output = Path(output)
    if plot is not None:
        from .plot import contact_map_png

        summary.plot = contact_map_png(plot, scores, distances, min_separation=max(6, min_separation),
                                       title=Path(model_path).stem)
    return summary
