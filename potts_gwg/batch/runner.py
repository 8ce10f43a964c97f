"""A whole batch: lock the output folder, decide what to (re)do, run it, write the summary."""

from __future__ import annotations

import contextlib
import datetime
import errno
import glob
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..device import AUTO_FALLBACK
from ..errors import InputError, ResourceError
from .executors import MEMORY_HEADROOM, parse_devices, plan_slots, run_local, run_ray
from .manifest import FamilySpec, read_families, select_shard
from .summary import SUMMARY_JSON, SUMMARY_PNG, SUMMARY_TSV, write_summary
from .task import (
    DONE,
    ERROR,
    FamilyTask,
    RunSettings,
    _read_json,
    _write_json,
    base_record,
    finished_record,
    plural,
    retire_stale_failure,
    settings_hash,
)

LOCK = ".lock"
BATCH_JSON = "batch.json"
SUMMARY_EVERY_SECONDS = 5.0
EXECUTORS = ("local", "ray")


@dataclass
class BatchOptions:
    """How to run (not what: that is :class:`RunSettings`)."""

    workers: int | None = None
    devices: str = "auto"
    threads: int | None = None
    executor: str = "local"
    ray_address: str | None = None
    shard: tuple[int, int] | None = None
    resume: bool = True
    msa_format: str | None = None
    progress: bool = True


@dataclass
class BatchResult:
    outdir: Path
    records: list[dict]                  # one per family of the manifest, in its order
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def ids(self, status: str) -> list[str]:
        return [record["id"] for record in self.records if record["status"] == status]


def run_batch(source: str | os.PathLike, outdir: str | os.PathLike, settings: RunSettings,
              options: BatchOptions, announce=lambda message: None) -> BatchResult:
    """Run (or resume) every family of ``source`` (this shard of it) into ``outdir``."""
    start = time.perf_counter()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    if options.executor not in EXECUTORS:
        raise InputError(f"--executor {options.executor}: one of {', '.join(EXECUTORS)}")
    families = read_families(source, options.msa_format, announce)
    selected = select_shard(families, options.shard)
    outdir = Path(outdir).expanduser().resolve()
    if outdir.exists() and not outdir.is_dir():
        raise InputError("the output folder is a file", outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create the output folder ({error.strerror})", outdir) from None
    slots = None
    if options.executor == "local":
        devices = parse_devices(options.devices)
        if "auto" in options.devices.lower() and devices == ["cpu"]:
            announce(f"devices: auto -> cpu ({AUTO_FALLBACK})")
        slots = plan_slots(devices, options.workers, options.threads, announce)
    with batch_lock(outdir, options.shard):
        if options.shard is None:
            _remove_temporary_files(outdir)
        digests: dict[str, str] = {}
        selected_ids = {family.id for family in selected}
        records: dict[str, dict] = {}
        to_run: list[FamilyTask] = []
        for family in selected:
            _check_family_folder(outdir, family)
        for family in families:
            folder = outdir / family.id
            if family.id not in selected_ids:
                records[family.id] = _other_shard_record(folder, family, settings)
                continue
            digest = settings_hash(family, settings, digests)
            previous = finished_record(folder, digest) if options.resume else None
            if previous is not None:
                if note := retire_stale_failure(folder):
                    announce(f"note: {note}")
                # (done.json files of before the seed column: the hash pins the seed)
                records[family.id] = {"seed": settings.seed, **previous, "resumed": True}
                continue
            records[family.id] = base_record(family.id, digest, settings, "pending")
            to_run.append(FamilyTask(family=family, settings=settings, outdir=str(outdir),
                                     settings_hash=digest, reuse_fit=options.resume))
        skipped = [family.id for family in selected if records[family.id].get("resumed")]
        where = _describe(options, slots)
        shard = f" (shard {options.shard[0]}/{options.shard[1]}: {len(selected)} of " \
            f"{len(families)})" if options.shard else ""
        announce(f"batch: {plural(len(selected), 'family', 'families')}{shard}; "
                 f"{len(skipped)} finished earlier "
                 f"with the same settings (skipped), {len(to_run)} to run {where} -> {outdir}")
        progress = None
        last_summary = [time.monotonic()]

        def on_result(record: dict) -> None:
            records[record["id"]] = record
            progress.update(record)
            if time.monotonic() - last_summary[0] >= SUMMARY_EVERY_SECONDS:
                last_summary[0] = time.monotonic()
                write_summary(outdir, list(records.values()), plot=False)

        try:
            if to_run:
                write_summary(outdir, list(records.values()), plot=False)
                estimates, budget = {}, None
                if options.executor == "local":
                    to_run, estimates, budget = _schedule(to_run, slots, announce)
                # After the scheduling notes (not drawn over them); its clock starts here.
                progress = _Progress(len(to_run), options.progress, announce)
                if options.executor == "ray":
                    run_ray(to_run, options.devices, options.threads, options.workers,
                            options.ray_address, on_result, announce)
                else:
                    run_local(to_run, slots, on_result, estimates, budget)
        finally:
            if progress is not None:
                progress.close()
            for family in families:  # other shards may have finished since this one started
                if family.id not in selected_ids:
                    records[family.id] = _other_shard_record(outdir / family.id, family,
                                                             settings)
            ordered = [records[family.id] for family in families]
            write_summary(outdir, ordered, plot=True)
            seconds = time.perf_counter() - start
            name = BATCH_JSON if options.shard is None else \
                f"batch-shard-{options.shard[0]}-of-{options.shard[1]}.json"
            _write_json(outdir / name, {
                "version": __version__, "source": str(Path(source).resolve()),
                "outdir": str(outdir), "started": started, "wall_s": round(seconds, 3),
                "executor": options.executor, "ray_address": options.ray_address,
                "devices": options.devices, "workers": options.workers,
                "threads": options.threads,
                "slots": [{"device": slot.device, "threads": slot.threads,
                           "elastic": slot.elastic} for slot in slots] if slots else None,
                "shard": None if options.shard is None else list(options.shard),
                "resume": options.resume, "settings": settings.hashed(),
                "max_memory": settings.max_memory,
                "families": len(families), "selected": len(selected),
                "ran": [task.family.id for task in to_run], "skipped": skipped,
                "done": sum(record["status"] == "done" for record in ordered),
                "failed": [record["id"] for record in ordered if record["status"] == "failed"],
                "summary": [SUMMARY_TSV, SUMMARY_JSON, SUMMARY_PNG]})
    return BatchResult(outdir=outdir, records=ordered, ran=[task.family.id for task in to_run],
                       skipped=skipped, seconds=seconds)


@contextlib.contextmanager
def batch_lock(outdir: Path, shard: tuple[int, int] | None):
    """Hold ``OUTDIR/.lock``: exclusively for a whole batch, shared by the shards of one
    (each shard also holds ``.lock-shard-I-of-N`` exclusively), so two batches never work on
    one folder; a second one gets a :class:`ResourceError` naming the holder.

    ``flock`` locks belong to the open file, so the kernel drops them when the holder dies,
    even by SIGKILL: a stale lock file never blocks the next run.
    """
    import fcntl

    holder = f"pid {os.getpid()} on {socket.gethostname()}, started " \
        f"{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}"
    handles = []
    try:
        main = _open_lock_file(outdir, LOCK)
        handles.append(main)
        if shard is None:
            if not _try_flock(main, fcntl.LOCK_EX, outdir):
                raise _in_use(outdir, _holders_of_folder(outdir, main))
            _write_holder(main, holder)
        else:
            if not _try_flock(main, fcntl.LOCK_SH, outdir):  # a whole batch holds it
                raise _in_use(outdir, [_read_holder(main)])
            name = _shard_lock_name(*shard)
            own = _open_lock_file(outdir, name)
            handles.append(own)
            if not _try_flock(own, fcntl.LOCK_EX, outdir):
                raise _in_use(outdir, [_read_holder(own)])
            other_sharding = _running_shards_of_another_count(outdir, shard[1])
            if other_sharding:  # shard 1/2 and 1/3 would both work on the first family
                raise _in_use(outdir, other_sharding)
            _write_holder(own, f"shard {shard[0]}/{shard[1]}: {holder}")
        yield
    finally:
        for handle in reversed(handles):
            handle.close()


def _running_shards_of_another_count(outdir: Path, count: int) -> list[str]:
    """Holders of the locks of shards of a batch split into another number of shards."""
    import fcntl

    holders = []
    for path in sorted(outdir.glob(f"{glob.escape(LOCK)}-shard-*-of-*")):
        if path.name.endswith(f"-of-{count}") or path.is_symlink():
            continue
        with open(path) as handle:
            if _try_flock(handle, fcntl.LOCK_EX, outdir):
                continue                                  # a finished (or killed) run's file
            holders.append(_read_holder(handle))
    return holders


def _shard_lock_name(index: int, count: int) -> str:
    return f"{LOCK}-shard-{index}-of-{count}"


def _open_lock_file(outdir: Path, name: str):
    """Open (create) a lock file without following a symbolic link planted in its place."""
    try:
        descriptor = os.open(outdir / name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        problem = "is a symbolic link; remove it" if error.errno == errno.ELOOP else \
            f"cannot be opened ({error.strerror})"
        raise InputError(f"the lock file {name} {problem}", outdir) from None
    return os.fdopen(descriptor, "r+")


def _try_flock(handle, mode: int, outdir: Path) -> bool:
    """Take the lock without waiting; False if another process holds it."""
    import fcntl

    try:
        fcntl.flock(handle, mode | fcntl.LOCK_NB)
        return True
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise InputError(f"cannot lock {Path(handle.name).name} ({error.strerror}); the output "
                         "folder must be on a file system with file locks", outdir) from None


def _write_holder(handle, text: str) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(text + "\n")
    handle.flush()


def _read_holder(handle) -> str:
    handle.seek(0)
    return handle.read().strip()


def _holders_of_folder(outdir: Path, main) -> list[str]:
    """Who holds ``OUTDIR/.lock``: a whole batch (exclusive: its pid is in the file) or
    shards (shared: their pids are in the shard lock files they hold)."""
    import fcntl

    if not _try_flock(main, fcntl.LOCK_SH, outdir):
        return [_read_holder(main)]
    holders = []
    for path in sorted(outdir.glob(f"{LOCK}-shard-*")):
        try:
            handle = _open_lock_file(outdir, path.name)
        except InputError:
            continue
        with handle:
            if not _try_flock(handle, fcntl.LOCK_SH, outdir):  # held: that shard is running
                holders.append(_read_holder(handle))
    return holders


def _in_use(outdir: Path, holders: list[str]) -> ResourceError:
    who = "; ".join(holder for holder in holders if holder) or f"its lock file {LOCK} is held"
    return ResourceError(f"{outdir} is in use by another batch run ({who}); wait for it to "
                         "finish or choose another -o")


def _check_family_folder(outdir: Path, family: FamilySpec) -> None:
    """OUTDIR/<id> must be (or become) a real folder: a symbolic link there would let the
    family's outputs land outside OUTDIR."""
    folder = outdir / family.id
    if folder.is_symlink():
        raise InputError(f"family {family.id}: the output folder {folder} is a symbolic link "
                         f"(to {os.readlink(folder)}); a batch writes only into real folders "
                         "inside its output folder: remove the link", family.source or None)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"family {family.id}: the output path {folder} is a file, not a "
                         "folder: move it away", family.source or None)


def _remove_temporary_files(outdir: Path) -> None:
    """Temporary files of a batch that was killed while writing its summary."""
    for path in outdir.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _other_shard_record(folder: Path, family: FamilySpec, settings: RunSettings) -> dict:
    """A family of another shard, as its own markers say (not checked against its inputs;
    its settings, seed included, are those of this run, so markers of before the seed
    column get this run's seed)."""
    wanted = settings.hashed()
    for name in (DONE, ERROR):
        marker = _read_json(folder / name) or {}
        result = marker.get("result")
        if isinstance(result, dict) and _settings_of(folder) == wanted:
            return {"seed": settings.seed, **result, "resumed": True}
    return base_record(family.id, None, settings, "pending")


def _settings_of(folder: Path) -> dict | None:
    resolved = _read_json(folder / "settings.json")
    if not resolved:
        return None
    fit = dict(resolved.get("fit") or {})
    fit.pop("max_memory", None)
    return {"fit": fit, "contacts": resolved.get("contacts")}


def _schedule(tasks: list[FamilyTask], slots, announce):
    """Largest families first (by N·L²), with their PLM memory estimates, when workers share
    the CPU; the order of the manifest otherwise."""
    cpu_slots = [slot for slot in slots if not slot.is_gpu]
    if len(slots) < 2 or len(tasks) < 2:
        return tasks, {}, None
    from ..fit.memory import available_bytes, plm_bytes
    from ..io.msa import read_alignment

    announce(f"reading the {len(tasks)} alignments to run the largest first")
    estimates, costs = {}, {}
    for task in tasks:
        family = task.family
        try:
            alignment = read_alignment(family.msa, format=family.format, query=family.query,
                                       query_index=family.query_index,
                                       query_file=family.query_file)
        except Exception:  # noqa: BLE001 - the worker will report it properly
            estimates[family.id], costs[family.id] = 0, 0
            continue
        n, length = alignment.n_sequences, alignment.length
        estimates[family.id] = plm_bytes(n, length, 21, task.settings.plm.history_size)
        costs[family.id] = n * length * length
    ordered = sorted(tasks, key=lambda task: -costs[task.family.id])
    budget = None
    if len(cpu_slots) > 1:
        import torch

        from ..fit.memory import format_bytes

        budget = int(available_bytes(torch.device("cpu")) * MEMORY_HEADROOM)
        announce(f"CPU workers share {format_bytes(budget)} by the fits' memory estimates")
    return ordered, estimates, budget


def _describe(options: BatchOptions, slots) -> str:
    if options.executor == "ray":
        return f"on Ray ({options.ray_address or 'local'})"
    counts: dict[str, int] = {}
    for slot in slots:
        key = f"{slot.device} ({slot.threads} thread{'s' if slot.threads != 1 else ''}" \
            f"{', more when the others are idle' if slot.elastic else ''})"
        counts[key] = counts.get(key, 0) + 1
    parts = [f"{count} x {key}" if count > 1 else key for key, count in counts.items()]
    return f"on {len(slots)} local worker{'s' if len(slots) != 1 else ''}: {', '.join(parts)}"


class _Progress:
    """A tqdm bar over families on a terminal (rate and ETA), one line per family otherwise."""

    def __init__(self, total: int, enabled: bool, announce):
        self.total, self.enabled, self.announce = total, enabled and total > 0, announce
        self.count = self.failed = 0
        self.start = time.monotonic()
        self.bar = None
        if self.enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="family", desc="batch", file=sys.stderr,
                            dynamic_ncols=True)

    def update(self, record: dict) -> None:
        self.count += 1
        self.failed += record["status"] != "done"
        if not self.enabled:
            return
        line = _result_line(record)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(failed=self.failed, last=record["id"])
            self.bar.write(line, file=sys.stderr)
            return
        from tqdm import tqdm

        elapsed = time.monotonic() - self.start
        eta = elapsed / self.count * (self.total - self.count)
        self.announce(f"[{self.count}/{self.total}] {line}  (elapsed "
                      f"{tqdm.format_interval(elapsed)}, ETA {tqdm.format_interval(eta)})")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _result_line(record: dict) -> str:
    if record["status"] != "done":
        return f"{record['id']}: FAILED ({record.get('reason')}, exit " \
            f"{record.get('exit_code')}): {record.get('message')}"
    precision = {(row["min_separation"], row["top"]): row["precision"]
                 for row in record.get("precision") or []}
    score = f", top-L precision {precision[(6, 'L')]:.3f}" if (6, "L") in precision else ""
    return f"{record['id']}: done in {record['wall_s']:.1f} s on {record['device']} " \
        f"(L={record['L']}, N={record['N']}, Neff={record['Neff']:.1f}{score})"
