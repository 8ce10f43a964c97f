"""The fit stage behind ``potts-gwg fit``: one job end to end, returning its outputs.

``fit_stage`` reads an alignment and writes a model file atomically; its summary names the
file, so a batch runner can call it and resume. The contacts stage that scores the model is
:func:`potts_gwg.contacts_stage.contacts_stage` (no torch there, so ``potts-gwg contacts``
starts fast); scripts written when it lived here still import it from here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__
from .alphabet import PROTEIN_ALPHABET
from .atomic import output_target, remove_stale_temporaries
from .contacts_stage import ContactsSummary, contacts_stage  # noqa: F401 (re-exported)
from .device import device_description, resolve_device
from .errors import InputError
from .fit.checkpoint import (
    checkpoint_path,
    data_fingerprint,
    load_checkpoint,
    save_checkpoint,
)
from .fit.memory import check_fit_memory
from .fit.pcd import default_steps, fit_pcd, initial_state
from .fit.plm import fit_plm, initial_fields
from .interrupts import held_interrupts
from .io.model_file import PottsModel, is_model_archive, load_model, save_model
from .io.msa import read_alignment
from .settings import FIT_METHODS, PCD_INITS, FitOptions
from .weights import effective_number, sequence_weights, shallow_alignment_note

RESEED_STRIDE = 0x9E3779B97F4A7C15   # odd 64-bit constant: (seed, iteration) -> a new seed
Reporter = Callable[[str], None]


@dataclass
class FitSummary:
    output: Path
    n_sequences: int
    length: int
    n_effective: float
    iterations: int
    converged: bool
    objective: float | None
    seconds: float
    device: str
    peak_memory_bytes: int | None     # CUDA: the most the fit's tensors held at once
    stop_reason: str = ""
    pearson_pairs: float | None = None
    pearson_sites: float | None = None
    resumed_from: int | None = None   # iteration of the checkpoint a PCD fit resumed from
    peak_reserved_bytes: int | None = None  # CUDA: the most the caching allocator held


def default_model_path(msa_path: str | os.PathLike) -> Path:
    """``family.a3m.gz`` -> ``family.npz`` in the current folder."""
    name = Path(msa_path).name
    name = name.removesuffix(".gz")
    stem = Path(name).stem or "model"
    return Path(f"{stem}.npz")


def refuse_replacing_other_files(output: Path) -> None:
    """A model replaces an earlier model at ``output``, never another kind of file: ``-o
    other.fasta`` would have destroyed that alignment. An empty file is replaced too; an
    unreadable one is refused (it cannot be checked)."""
    if not output.is_file() or output.stat().st_size == 0:  # nothing there, a FIFO, a device
        return
    if not is_model_archive(output):
        raise InputError("exists and is no model file (an npz archive with h and J): the model "
                         "would replace it; give another name, or delete the file first", output)


def fit_stage(msa_path: str | os.PathLike, output: str | os.PathLike | None,
              options: FitOptions, report: Reporter = lambda message: None,
              on_iteration=None, on_pcd_iteration=None,
              warn: Reporter | None = None) -> FitSummary:
    """Read, weight, fit and write the model file; return what was done.

    ``report`` gets notes on the work, ``warn`` (default: ``report``) warnings about the
    result, such as an alignment too shallow for reliable contacts (``fit -q`` keeps those).

    ``on_iteration(iteration, objective, gradient_norm)`` follows PLM (also the PLM start
    of a PCD fit); ``on_pcd_iteration(PcdProgress)`` follows a gwg/gibbs fit.
    """
    if options.method not in FIT_METHODS:
        raise InputError(f"--method {options.method}: unknown fit method "
                         f"(available: {', '.join(FIT_METHODS)})")
    if options.init not in PCD_INITS and not str(options.init).endswith(".npz"):
        what = ("not a model file (an .npz written by potts-gwg fit)"
                if os.path.isfile(options.init) else "unknown start")
        raise InputError(f"--init {options.init}: {what} (available: {', '.join(PCD_INITS)}, "
                         "or a model file MODEL.npz)")
    if output is None:
        output = default_model_path(msa_path)
        if output.exists():
            refuse_replacing_other_files(output)
            report(f"replacing {output}, the default output for this alignment (-o names "
                   "another file)")
    output = Path(output)
    # A bad output path is refused before the work, not after.
    output_target(output, inputs=(msa_path, options.query_file,
                                  None if options.init in PCD_INITS else options.init))
    refuse_replacing_other_files(output)
    if not options.resume and checkpoint_path(output).exists():
        # also for plm: the model would replace the output and leave a checkpoint of another
        # fit beside it, which a later --resume would continue
        how = ("continue it with --resume, or delete it to start afresh"
               if options.method != "plm" else
               "continue it with --method gwg|gibbs --resume, or delete it before a plm fit "
               "to this output")
        raise InputError(f"holds an earlier gwg/gibbs fit to this output, not finished: {how}",
                         checkpoint_path(output))
    start = time.perf_counter()
    # An unusable --device fails at once; where auto landed is said once the alignment has
    # been read, so that a bad alignment's error is the only line.
    device_notes: list[str] = []
    device = resolve_device(options.device, announce=device_notes.append)
    # Seeded for the fit (the same model for a seed), the caller's generator left as it was.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(options.seed)
        return _fit_stage(msa_path, output, options, device, device_notes, start, report,
                          on_iteration, on_pcd_iteration, warn or report)


def _fit_stage(msa_path, output: Path, options: FitOptions, device: torch.device,
               device_notes: list[str], start: float, report: Reporter, on_iteration,
               on_pcd_iteration, warn: Reporter) -> FitSummary:
    """:func:`fit_stage` once its options are checked and its device chosen."""
    alignment = read_alignment(msa_path, format=options.format, query=options.query,
                               query_index=options.query_index, query_file=options.query_file,
                               progress=options.progress)
    for note in device_notes:
        report(note)
    n_states = len(PROTEIN_ALPHABET)
    pcd = options.method != "plm"
    if device.type == "cuda":
        # Blocks cached by an earlier fit in this process (a batch worker) would count as used
        # in the free memory the estimate is checked against: return them first.
        torch.cuda.empty_cache()
    check_fit_memory(alignment.n_sequences, alignment.length, n_states,
                     options.plm.history_size, device, options.max_memory,
                     pcd_chains=options.pcd.n_chains if pcd else None,
                     plm_init=options.init == "plm",
                     adam=pcd and options.pcd.optimizer == "adam")
    report(f"read {msa_path}: {alignment.format}, N={alignment.n_sequences}, "
           f"L={alignment.length}, query {alignment.query_name}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    weights = sequence_weights(alignment.indices, n_states, options.theta, device=device,
                               progress=options.progress)
    n_effective = effective_number(weights)
    report(f"weights: Neff={n_effective:.1f} (theta={options.theta}), "
           f"Neff/L={n_effective / alignment.length:.2f}")
    shallow = shallow_alignment_note(n_effective, alignment.length)
    if shallow is not None:
        warn(f"warning: {shallow}")
    for leftover in remove_stale_temporaries(output):
        report(f"removed {leftover}, left by an earlier run that was killed while writing")
    meta = {
        "method": options.method,
        "version": __version__,
        "seed": options.seed,
        "hyperparameters": {"theta": options.theta},
        "msa": str(msa_path),
        "msa_format": alignment.format,
        "query_name": alignment.query_name,
        "query_sequence": alignment.query_sequence,
        "query_file": (None if options.query_file is None
                       else str(Path(options.query_file).resolve())),
        "n_sequences": alignment.n_sequences,
        "n_effective": round(n_effective, 4),
        "length": alignment.length,
        "n_nonstandard": alignment.n_nonstandard,
    }
    indices = torch.as_tensor(alignment.indices).to(device=device, dtype=torch.long)
    resumed_from = None
    if pcd:
        h, J, summary, resumed_from = _fit_by_pcd(indices, weights, n_states, options, output,
                                                  device, report, warn, on_iteration,
                                                  on_pcd_iteration)
    else:
        result = fit_plm(indices, weights, n_states, options.plm, device=device,
                         on_iteration=on_iteration)
        h, J = result.h, result.J
        summary = {"iterations": result.iterations, "converged": result.converged,
                   "objective": result.objective}
    meta["hyperparameters"].update(summary.pop("hyperparameters", options.plm.as_dict()))
    meta.update(summary)
    save_model(output, PottsModel(h=h, J=J, alphabet=PROTEIN_ALPHABET, meta=meta))
    if pcd:
        checkpoint_path(output).unlink(missing_ok=True)  # the model file supersedes it
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    reserved = int(torch.cuda.max_memory_reserved(device)) if device.type == "cuda" else None
    return FitSummary(output=output, n_sequences=alignment.n_sequences,
                      length=alignment.length, n_effective=n_effective,
                      iterations=meta["iterations"], converged=meta["converged"],
                      objective=meta.get("objective"), seconds=time.perf_counter() - start,
                      device=device_description(device), peak_memory_bytes=peak,
                      stop_reason=meta.get("stop_reason", ""),
                      pearson_pairs=meta.get("pearson_pairs"),
                      pearson_sites=meta.get("pearson_sites"),
                      resumed_from=resumed_from, peak_reserved_bytes=reserved)


def _fit_by_pcd(indices: torch.Tensor, weights: torch.Tensor, n_states: int,
                options: FitOptions, output: Path, device: torch.device, report: Reporter,
                warn: Reporter, on_iteration, on_pcd_iteration):
    """The gwg/gibbs branch of :func:`fit_stage`: start (PLM, independent sites, or a
    checkpoint), run PCD with periodic checkpoints, return (h, J, meta fields). ``warn``
    says how to continue an interrupted fit (``fit -q`` keeps that)."""
    # The steps the run takes, recorded in the model and the checkpoint (None: the default).
    settings = dataclasses.replace(options.pcd, sampler=options.method,
                                   steps=options.pcd.steps or default_steps(indices.shape[1]))
    checkpoint = checkpoint_path(output)
    for leftover in remove_stale_temporaries(checkpoint):
        report(f"removed {leftover}, left by an earlier run that was killed while writing")
    fingerprint = data_fingerprint(indices, weights)
    state = resumed_from = None
    if options.resume and checkpoint.exists():
        state, start_meta = load_checkpoint(checkpoint, settings, fingerprint, device)
        if start_meta.get("seed", options.seed) != options.seed:
            raise InputError(f"checkpoint was made with --seed {start_meta['seed']}; resume "
                             "with the same seed (its chains and random state continue), or "
                             "delete it to start afresh", checkpoint)
        resumed_from = state.iteration
        report(f"resuming from {checkpoint} at iteration {state.iteration} "
               f"({state.seconds:.1f} s of fitting done)")
        state = _generator_for_device(state, device, options.seed, report)
    elif options.resume:
        report(f"no checkpoint at {checkpoint}; starting afresh")
    if state is None:
        h0, J0, start_meta = _pcd_start(indices, weights, n_states, options, device, report,
                                        on_iteration)
        start_meta["seed"] = options.seed
        state = initial_state(h0.to(device), J0.to(device), indices, weights, settings,
                              options.seed)
        del h0, J0  # the start's (L, L, q, q) array: the state holds its own (L·q)² copy
        if options.checkpoint_interval is not None:
            save_checkpoint(checkpoint, state, settings, fingerprint, start_meta)

    def on_checkpoint(snapshot) -> None:
        save_checkpoint(checkpoint, snapshot, settings, fingerprint, start_meta)

    # With checkpoints on, Ctrl-C (or SIGTERM) stops after the running update and saves one.
    with (held_interrupts(report) if options.checkpoint_interval is not None
          else contextlib.nullcontext(lambda: False)) as stop_requested:
        result = fit_pcd(indices, weights, n_states, state, settings,
                         on_iteration=on_pcd_iteration, on_checkpoint=on_checkpoint,
                         checkpoint_interval=options.checkpoint_interval,
                         stop_requested=stop_requested)
        if result.stop_reason == "interrupted":
            warn(f"interrupted after update {result.iterations}: {checkpoint} holds it; "
                 "the same command with --resume continues")
    return result.h, result.J, {
        **start_meta,
        "hyperparameters": settings.as_dict(),
        "iterations": result.iterations,
        "converged": result.stop_reason == "target_pearson",
        "stop_reason": result.stop_reason,
        "pcd_seconds": round(result.seconds, 3),
        "pearson_pairs": _finite_or_none(result.pearson_pairs),
        "pearson_sites": _finite_or_none(result.pearson_sites),
        "acceptance": _finite_or_none(result.acceptance),
    }, resumed_from


def _generator_for_device(state, device: torch.device, seed: int, report: Reporter):
    """``state`` whose random state this device's generator takes: a checkpoint written on
    another device type (CUDA's state is 16 bytes, the CPU's 5 056) continues with a generator
    seeded from the seed and the iteration, and says so, rather than failing."""
    generator = torch.Generator(device=device)
    if generator.get_state().numel() == state.generator_state.numel():
        return state
    generator.manual_seed((seed + state.iteration * RESEED_STRIDE) % 2**64)
    report(f"the checkpoint's random state is a {'CPU' if device.type == 'cuda' else 'GPU'} "
           f"generator's; continuing on {device} with one seeded from --seed and the "
           "iteration (the model will differ from an uninterrupted run's)")
    return dataclasses.replace(state, generator_state=generator.get_state())


def _pcd_start(indices: torch.Tensor, weights: torch.Tensor, n_states: int, options: FitOptions,
               device: torch.device, report: Reporter, on_iteration
               ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(h0, J0) on the CPU for ``--init`` and the meta fields that say where they came from.
    Nothing else keeps J0 alive once the caller drops it (the PLM result is not returned)."""
    if options.init == "plm":
        report("start: PLM fit")
        plm = fit_plm(indices, weights, n_states, options.plm, device=device,
                      on_iteration=on_iteration)
        return torch.from_numpy(plm.h), torch.from_numpy(plm.J), {
            "init": "plm", "plm": options.plm.as_dict(), "plm_iterations": plm.iterations,
            "plm_seconds": round(plm.seconds, 3)}
    if options.init == "independent":
        length = indices.shape[1]
        h0 = initial_fields(indices, weights, n_states).cpu()
        return h0, torch.zeros(length, length, n_states, n_states), {"init": "independent"}
    return _start_from_model(options.init, indices.shape[1])


def _start_from_model(path: str, length: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(h, J) of a model file fitted to the same query columns, e.g. an earlier PLM fit."""
    model = load_model(path)
    if model.alphabet != PROTEIN_ALPHABET or model.length != length:
        raise InputError(f"--init: model has L={model.length} over {model.alphabet!r}; this "
                         f"alignment needs L={length} over {PROTEIN_ALPHABET!r}", path)
    return (torch.from_numpy(model.h), torch.from_numpy(model.J),
            {"init": str(path), "init_method": model.meta.get("method")})


def _finite_or_none(value: float, digits: int = 5) -> float | None:
    """JSON has no NaN: a diagnostic never computed (no update made) is null."""
    return round(value, digits) if math.isfinite(value) else None
