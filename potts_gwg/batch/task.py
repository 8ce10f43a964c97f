"""The per-family task: inputs in, ``OUTDIR/<id>/`` out, a result record back.

:func:`run_family` is what every executor runs (a local worker process, a Ray task, or the
calling process): it fits the model, scores the contacts, evaluates them against the
structure when there is one, and writes, each file atomically::

    OUTDIR/<id>/settings.json    resolved inputs and settings, with their hash
    OUTDIR/<id>/log.txt          what happened (progress, timings, a traceback on a bug)
    OUTDIR/<id>/model.npz        the Potts model (potts-gwg model file)
    OUTDIR/<id>/contacts.<fmt>   ranked pairs (tsv by default)
    OUTDIR/<id>/evaluation.json  precision table and structure mapping (with a structure)
    OUTDIR/<id>/contact_map.png  with --contact-maps and a structure
    OUTDIR/<id>/done.json        written last: the settings hash, output sizes, the result

A run writes into ``OUTDIR/<id>/.run/`` (where a killed gwg/gibbs fit also keeps its
checkpoint) and moves its outputs up only when it has succeeded, so a rerun with other
settings that fails leaves the earlier results (model, contacts, evaluation) in place; its
``error.json`` and ``log.txt`` say what went wrong.

A failure of the family (bad input, not enough memory, a bug) never escapes: it becomes a
``failed`` record with the message, the exit status the single command would have had and the
error's kind, and is written to ``error.json``. A family counts as finished only when
``done.json`` is present, carries the same settings hash and its outputs are all there.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..allocator import release_freed_memory
from ..atomic import atomic_open
from ..device import is_out_of_memory, memory_estimate_scope, out_of_memory_error
from ..errors import InputError, PottsError
from ..fit.checkpoint import checkpoint_path
from ..fit.pcd import PcdSettings
from ..fit.plm import PlmSettings
from ..io.contact_formats import CONTACT_FORMATS
from .manifest import FamilySpec

MODEL = "model.npz"
EVALUATION = "evaluation.json"
CONTACT_MAP = "contact_map.png"
SETTINGS = "settings.json"
RUN = ".run"  # the folder a run works in until it has succeeded
LOG = "log.txt"
DONE = "done.json"
# What a result record says about the fit (taken over when a rerun reuses the model)
FIT_FIELDS = ("L", "N", "Neff", "device", "fit_s", "iterations", "converged", "objective",
              "peak_gpu_bytes")
ERROR = "error.json"
EXIT_INTERNAL = 70
LOG_EVERY_SECONDS = 5.0
# Set by a local worker whose thread count follows the load (see executors.run_local): returns
# the torch threads this family should use now. Checked when a family starts and after every
# fit iteration, so a family left running alone takes the cores its finished neighbours freed.
thread_policy: Callable[[], int] | None = None


@dataclass
class RunSettings:
    """Batch-wide settings of the fit and the contacts stage (the same for every family)."""

    method: str = "plm"
    seed: int = 0
    theta: float = 0.8
    plm: PlmSettings = field(default_factory=PlmSettings)
    pcd: PcdSettings = field(default_factory=PcdSettings)  # used by method gwg / gibbs
    init: str = "plm"                   # gwg / gibbs start: plm or independent
    max_memory: int | None = None       # a limit, not a setting of the result: not hashed
    contacts_format: str = "tsv"
    apc: bool = True
    min_separation: int = 1
    contact_map: bool = False

    @property
    def contacts_name(self) -> str:
        return f"contacts.{self.contacts_format}"

    def hashed(self) -> dict:
        """What decides the outputs (a change redoes the family on resume)."""
        pcd = {} if self.method == "plm" else {"pcd": self.pcd.as_dict(), "init": self.init}
        return {"fit": {"method": self.method, "seed": self.seed, "theta": self.theta,
                        **self.plm.as_dict(), **pcd},
                "contacts": {"format": self.contacts_format, "apc": self.apc,
                             "min_separation": self.min_separation,
                             "contact_map": self.contact_map}}


@dataclass
class FamilyTask:
    """Everything a worker needs for one family; plain data, picklable for any executor."""

    family: FamilySpec
    settings: RunSettings
    outdir: str
    settings_hash: str
    device: str = "cpu"
    threads: int | None = None
    reuse_fit: bool = True   # take the finished model of the same fit (False: --no-resume)


def settings_hash(family: FamilySpec, settings: RunSettings, digests: dict | None = None) -> str:
    """SHA-256 over the input files' contents and the settings that decide the outputs.

    Paths are not part of it (moving the data does not redo finished families); devices,
    thread counts and memory limits are not either.
    """
    digests = {} if digests is None else digests
    return _digest({**_fit_inputs(family, digests),
                    "structure": None if family.structure is None
                    else file_digest(family.structure, digests),
                    "chain": family.chain, **settings.hashed()})


def fit_hash(family: FamilySpec, settings: RunSettings, digests: dict | None = None) -> str:
    """SHA-256 over what decides the model alone (alignment, query, fit settings): a rerun
    that changes only the structure or the contacts settings reuses the finished model."""
    digests = {} if digests is None else digests
    return _digest({**_fit_inputs(family, digests), "fit": settings.hashed()["fit"]})


def _fit_inputs(family: FamilySpec, digests: dict) -> dict:
    return {"msa": file_digest(family.msa, digests), "format": family.format,
            "query": {"name": family.query, "index": family.query_index,
                      "file": None if family.query_file is None
                      else file_digest(family.query_file, digests)}}


def _digest(document: dict) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: str, cache: dict) -> str:
    """SHA-256 of a file's bytes (cached per path; a missing file hashes as its name)."""
    if path not in cache:
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
            cache[path] = digest.hexdigest()
        except OSError:
            cache[path] = f"unreadable:{path}"
    return cache[path]


def finished_record(folder: str | os.PathLike, expected_hash: str) -> dict | None:
    """The result stored in ``done.json`` if the family is finished with these settings."""
    marker = _read_json(Path(folder) / DONE)
    if not marker or marker.get("settings_hash") != expected_hash:
        return None
    for name, size in (marker.get("outputs") or {}).items():
        path = Path(folder) / name
        if not path.is_file() or path.stat().st_size != size:
            return None
    result = marker.get("result")
    return result if isinstance(result, dict) else None


def failed_record(folder: str | os.PathLike, expected_hash: str) -> dict | None:
    """The result stored in ``error.json`` if the family failed with these settings."""
    marker = _read_json(Path(folder) / ERROR)
    if not marker or marker.get("settings_hash") != expected_hash:
        return None
    result = marker.get("result")
    return result if isinstance(result, dict) else None


def retire_stale_failure(folder: str | os.PathLike) -> str | None:
    """For a family found finished with the settings asked for: drop the ``error.json`` that a
    later, failed run left beside ``done.json`` (the summary says done, so the folder should
    not say failed), and say so at the end of ``log.txt``, which that run may have rewritten.
    Returns a note for the batch's output when the folder could not be tidied (the family
    stays done; the batch goes on), else None."""
    error = Path(folder) / ERROR
    failed = _read_json(error) if error.is_file() else None
    if failed is None:
        return None
    done = _read_json(Path(folder) / DONE) or {}
    settings = "these settings" if failed.get("settings_hash") == done.get("settings_hash") \
        else "other settings"
    try:
        error.unlink(missing_ok=True)
        log = Path(folder) / LOG
        if log.is_file():
            with open(log, "a") as stream:
                stream.write(f"{_now()} batch: finished earlier with the settings asked now "
                             f"({DONE}); a later run with {settings} failed, and its {ERROR} "
                             "is removed (its log, as far as it got, is above)\n")
    except OSError as problem:
        return f"{folder}: could not remove a later failed run's {ERROR} ({problem})"
    return None


def output_names(settings: RunSettings) -> list[str]:
    """Every file a run of a family may leave, ``done.json`` first (it goes first, too)."""
    return [DONE, ERROR, MODEL, settings.contacts_name, EVALUATION, CONTACT_MAP, SETTINGS]


def run_family(task: FamilyTask) -> dict:
    """Run one family end to end into ``OUTDIR/<id>/``; return its result record. Torch's
    thread count is put back afterwards (the task may set its own)."""
    import torch

    threads = torch.get_num_threads()
    try:
        with memory_estimate_scope():  # an out-of-memory failure quotes this family's estimate
            return _run_family(task)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _run_family(task: FamilyTask) -> dict:
    start = time.perf_counter()
    family, settings = task.family, task.settings
    folder = Path(task.outdir) / family.id
    record = base_record(family.id, task.settings_hash, settings, status="failed")
    record.update(device=task.device, threads=task.threads, host=socket.gethostname(),
                  pid=os.getpid(), started=_now())
    work = folder / RUN
    log = None
    try:
        if work.is_symlink():
            raise InputError(f"{work} is a symbolic link: the run folder must lie inside the "
                             "output folder (remove the link)")
        work.mkdir(parents=True, exist_ok=True)
        _drop_checkpoint_of_other_settings(work, task.settings_hash)
        clear_family_folder(work, settings)  # an interrupted run's outputs, not its checkpoint
        threads = _set_threads(task.threads)
        record["threads"] = threads
        log = _Log(work / LOG)
        elastic = " (following the load)" if thread_policy is not None else ""
        on_threads = f", {plural(threads, 'thread', 'threads')}{elastic}" if threads else ""
        log(f"potts-gwg {__version__} batch: family {family.id} ({family.source}) on "
            f"{task.device}{on_threads}, host {record['host']}, pid {record['pid']}")
        release_freed_memory()  # what earlier families left in the heap: not this one's peak
        _reset_peak_rss()
        _write_json(work / SETTINGS, resolved_settings(task))
        _run_stages(task, work, record, log)
        record["status"] = "done"
    except Exception as error:  # noqa: BLE001 - the family fails; the batch goes on
        record.update(_failure(error))
        if log is not None:
            log(f"failed: {record['reason']} (exit {record['exit_code']}): {record['message']}")
            if record["exit_code"] == EXIT_INTERNAL:
                log(record.get("traceback", ""))
    record["wall_s"] = round(time.perf_counter() - start, 3)
    record["peak_rss_bytes"] = _peak_rss()
    record["finished"] = _now()
    try:
        if record["status"] == "done":
            log(f"done in {record['wall_s']:.1f} s")
            log.close()
            _publish(work, folder, settings)
            # The log is no result: a later failed rerun replaces it, and that must not make
            # these results look damaged (the sizes are what finished_record checks).
            outputs = {name: (folder / name).stat().st_size
                       for name in _present(folder, settings)}
            _write_json(folder / DONE, {"settings_hash": task.settings_hash,
                                        "outputs": outputs, "result": record})
        else:
            if log is not None:
                log.close()
                os.replace(work / LOG, folder / LOG)
            # A failed fit's checkpoint would only fail again (or belong to settings that the
            # next run may not have): a rerun starts afresh.
            if not work.is_symlink():  # never delete through a link out of OUTDIR
                clear_family_folder(work, settings)
                checkpoint_path(work / MODEL).unlink(missing_ok=True)
                _remove_if_empty(work)
            _write_json(folder / ERROR, {"settings_hash": task.settings_hash,
                                         "result": record})
    except Exception as error:  # noqa: BLE001 - the outputs folder is unusable (disk full, …)
        record.update(_failure(error))
    finally:
        if log is not None:
            log.close()
    return record


def base_record(family_id: str, digest: str | None, settings: RunSettings, status: str
                ) -> dict:
    """A result record with every summary field present (unknown = None)."""
    return {"id": family_id, "status": status, "L": None, "N": None, "Neff": None,
            "method": settings.method, "seed": settings.seed, "device": None, "threads": None,
            "wall_s": None, "fit_s": None, "iterations": None, "converged": None, "objective": None,
            "peak_rss_bytes": None, "peak_gpu_bytes": None, "precision": None,
            "structure_identity": None, "structure_coverage": None, "message": None,
            "reason": None, "exit_code": None, "host": None, "pid": None, "started": None,
            "finished": None, "settings_hash": digest}


def resolved_settings(task: FamilyTask) -> dict:
    family, settings = task.family, task.settings
    hashed = settings.hashed()
    return {"id": family.id, "settings_hash": task.settings_hash, "version": __version__,
            "source": family.source,
            "inputs": {"msa": family.msa, "format": family.format,
                       "query": family.query_description(), "structure": family.structure,
                       "chain": family.chain},
            # What the hash covers (PCD settings and start included for gwg/gibbs), so other
            # shards can tell which settings a family was run with; and the memory limit.
            **hashed,
            "fit": {**hashed["fit"], "max_memory": settings.max_memory},
            "device": task.device, "threads": task.threads}


def clear_family_folder(folder: Path, settings: RunSettings) -> None:
    """Remove a run's outputs (the done marker first), the contacts of any other format (an
    earlier run's with other settings) and any temporary files from ``folder`` (the family's
    or the run's)."""
    other_contacts = [f"contacts.{name}" for name in CONTACT_FORMATS
                      if f"contacts.{name}" != settings.contacts_name]
    for name in output_names(settings) + other_contacts + [LOG]:
        try:
            (folder / name).unlink()
        except FileNotFoundError:
            pass
    for path in folder.glob(".*.tmp"):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _drop_checkpoint_of_other_settings(work: Path, settings_hash: str) -> None:
    """A killed gwg/gibbs run left its checkpoint in ``work``; it is resumed only by a run
    with the same settings (its settings.json says which), else removed (another seed or
    other settings could not continue it; without settings.json its origin is unknown)."""
    previous = _read_json(work / SETTINGS)
    if previous is None or previous.get("settings_hash") != settings_hash:
        checkpoint_path(work / MODEL).unlink(missing_ok=True)


def _publish(work: Path, folder: Path, settings: RunSettings) -> None:
    """Replace the family's earlier outputs (the done marker first) by the run's."""
    clear_family_folder(folder, settings)
    for name in output_names(settings) + [LOG]:
        if (work / name).is_file():
            os.replace(work / name, folder / name)
    _remove_if_empty(work)


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` unless it still holds something (a gwg/gibbs checkpoint)."""
    try:
        folder.rmdir()
    except OSError:
        pass


def _run_stages(task: FamilyTask, folder: Path, record: dict, log: _Log) -> None:
    from ..contacts_stage import contacts_stage
    from ..pipeline import FitOptions, fit_stage

    family, settings = task.family, task.settings
    options = FitOptions(method=settings.method, device=task.device, seed=settings.seed,
                         format=family.format, query=family.query,
                         query_index=family.query_index, query_file=family.query_file,
                         theta=settings.theta, plm=settings.plm,
                         max_memory=settings.max_memory, pcd=settings.pcd,
                         init=settings.init,
                         resume=True)  # a rerun continues a killed gwg/gibbs fit
    record["fit_hash"] = fit_hash(family, settings)
    earlier = _reusable_fit(folder.parent, record["fit_hash"]) if task.reuse_fit else None
    if earlier is None and family.structure is not None:
        _check_structure(family, log)  # a wrong chain or query fails before the fit
    if earlier is not None:
        shutil.copyfile(folder.parent / MODEL, folder / MODEL)
        record.update({name: earlier.get(name) for name in FIT_FIELDS})
        log(f"fit: reused {folder.parent / MODEL} of the run finished {earlier.get('finished')} "
            "(same alignment, query and fit settings; only the structure or the contacts "
            "settings changed)")
    else:
        progress = _IterationLog(log, record)
        fit = fit_stage(family.msa, folder / MODEL, options, report=log, on_iteration=progress)
        record.update(L=fit.length, N=fit.n_sequences, Neff=round(fit.n_effective, 4),
                      device=fit.device, fit_s=round(fit.seconds, 3),
                      iterations=fit.iterations, converged=fit.converged,
                      objective=fit.objective, peak_gpu_bytes=fit.peak_memory_bytes)
        log(f"fit {settings.method}: N={fit.n_sequences} L={fit.length} "
            f"Neff={fit.n_effective:.1f}, {fit.iterations} iterations "
            f"({'converged' if fit.converged else 'at the limit'}), {fit.seconds:.1f} s on "
            f"{fit.device}")
    plot = folder / CONTACT_MAP if settings.contact_map and family.structure else None
    contacts = contacts_stage(folder / MODEL, folder / settings.contacts_name,
                              format=settings.contacts_format, apc=settings.apc,
                              min_separation=settings.min_separation,
                              structure=family.structure, chain=family.chain, plot=plot,
                              target=family.id)
    log(f"contacts: {settings.contacts_name}")
    if contacts.precision is not None:
        record.update(precision=contacts.precision,
                      structure_identity=contacts.mapping["identity"],
                      structure_coverage=contacts.mapping["coverage"])
        _write_json(folder / EVALUATION, {"id": family.id, "length": contacts.length,
                                          "structure_mapping": contacts.mapping,
                                          "precision": contacts.precision})
        top = {(row["min_separation"], row["top"]): row["precision"] for row in contacts.precision}
        log(f"evaluation vs {family.structure}: top-L precision "
            f"{top.get((6, 'L'), float('nan')):.3f} (|i-j|>=6), identity "
            f"{contacts.mapping['identity']:.3f}")


def _reusable_fit(folder: Path, expected_fit_hash: str) -> dict | None:
    """The record of the finished run in ``folder`` whose model came from the same alignment,
    query and fit settings, if its model file is there intact; else None."""
    marker = _read_json(folder / DONE)
    if not marker or not isinstance(marker.get("result"), dict):
        return None
    result, size = marker["result"], (marker.get("outputs") or {}).get(MODEL)
    if result.get("fit_hash") != expected_fit_hash or size is None:
        return None
    model = folder / MODEL
    return result if model.is_file() and model.stat().st_size == size else None


def _check_structure(family, log: _Log) -> None:
    """Read the structure's chain and map the alignment's query onto it, as the contacts
    stage will: an error here costs seconds, after the fit it cost the fit."""
    from ..io.msa import read_alignment
    from ..io.structure import NotTheQueryError, map_query_to_chain, read_chain

    residues = read_chain(family.structure, family.chain)
    alignment = read_alignment(family.msa, format=family.format, query=family.query,
                               query_index=family.query_index, query_file=family.query_file)
    try:
        mapping = map_query_to_chain(alignment.query_sequence, residues, family.structure)
    except NotTheQueryError as error:
        raise InputError(f"{error}; the query is the record {alignment.query_name!r} "
                         f"(query {family.query_description()}): if that is not this "
                         "protein, give another in the manifest's query column") from None
    log(f"structure {family.structure} chain {residues.chain_id!r}: identity "
        f"{mapping.identity:.3f}, coverage {mapping.coverage:.3f} (checked before the fit)")


def _failure(error: BaseException) -> dict:
    if isinstance(error, PottsError):
        return {"status": "failed", "message": str(error), "reason": type(error).__name__,
                "exit_code": error.exit_code}
    if is_out_of_memory(error):
        resource_error = out_of_memory_error(error)
        return {"status": "failed", "message": str(resource_error),
                "reason": type(resource_error).__name__, "exit_code": resource_error.exit_code}
    return {"status": "failed", "message": f"internal error ({type(error).__name__}: {error})",
            "reason": "internal", "exit_code": EXIT_INTERNAL,
            "traceback": "".join(traceback.format_exception(error))}


def _present(folder: Path, settings: RunSettings) -> list[str]:
    return [name for name in output_names(settings)[2:] if (folder / name).is_file()]


def _write_json(path: Path, document: dict) -> None:
    with atomic_open(path) as stream:
        json.dump(document, stream, indent=2, default=str)
        stream.write("\n")


def _read_json(path: Path) -> dict | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def plural(count: int, one: str, many: str) -> str:
    """``1 thread``, ``2 threads``."""
    return f"{count} {one if count == 1 else many}"


def _reset_peak_rss() -> None:
    """Start this process's peak-RSS count afresh (Linux; elsewhere the lifetime peak stays)."""
    try:
        with open("/proc/self/clear_refs", "w") as stream:
            stream.write("5")
    except OSError:
        pass


def _peak_rss() -> int | None:
    """Peak resident memory of this process since :func:`_reset_peak_rss`, in bytes."""
    try:
        with open("/proc/self/status") as stream:
            for line in stream:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except (ImportError, OSError):
        return None


class _Log:
    """The family's log file: timestamped lines, flushed as they come."""

    def __init__(self, path: Path):
        self.stream = open(path, "w")  # noqa: SIM115 - open for the family's whole run
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.stream.closed:
            return
        for line in str(message).rstrip("\n").splitlines() or [""]:
            self.stream.write(f"[{time.perf_counter() - self.start:8.1f} s] {line}\n")
        self.stream.flush()

    def close(self) -> None:
        if not self.stream.closed:
            self.stream.close()


def _set_threads(requested: int | None) -> int | None:
    """Apply the thread policy (or the requested count) to torch; return the count in use."""
    threads = thread_policy() if thread_policy is not None else requested
    if threads:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return threads


class _IterationLog:
    """After each fit iteration: follow the thread policy, and log the first iteration, then
    one line every few seconds."""

    def __init__(self, log: _Log, record: dict):
        self.log, self.record, self.last = log, record, None
        self.threads = record["threads"]

    def __call__(self, iteration: int, objective: float, gradient_norm: float) -> None:
        if thread_policy is not None:
            threads = _set_threads(None)
            if threads != self.threads:
                self.log(f"torch threads {self.threads} -> {threads} (the number of busy CPU "
                         "workers changed)")
                self.threads = threads
                self.record["threads"] = max(threads, self.record["threads"] or 0)
        now = time.monotonic()
        if self.last is None or now - self.last >= LOG_EVERY_SECONDS:
            self.last = now
            self.log(f"iteration {iteration:4d}  objective {objective:.6g}  "
                     f"|gradient| {gradient_norm:.3g}")
