"""Batch runs over many protein families: resumable, parallel on local devices or on Ray.

``run_batch(manifest_or_folder, outdir, RunSettings(...), BatchOptions(...))`` fits and scores
every family into ``outdir/<id>/`` (see :mod:`.task` for the files), skipping those finished
earlier with the same settings, and writes ``summary.tsv``, ``summary.json`` and
``summary.png``. The pieces are usable alone: :func:`read_families` (manifest or folder),
:func:`select_shard`, :func:`run_family` (one family, any executor), :func:`write_summary`.
"""

from __future__ import annotations

from ..errors import PottsError
from .executors import Slot, parse_devices, plan_slots, run_local, run_ray
from .manifest import (
    FamilySpec,
    parse_shard,
    read_families,
    read_folder,
    read_manifest,
    select_shard,
)
from .runner import BatchOptions, BatchResult, batch_lock, run_batch
from .summary import summary_frame, write_summary
from .task import FamilyTask, RunSettings, finished_record, run_family, settings_hash


class BatchFailures(PottsError):
    """Some families of a batch failed (the others finished); exit status 1."""

    exit_code = 1


__all__ = ["BatchFailures", "BatchOptions", "BatchResult", "FamilySpec", "FamilyTask",
           "RunSettings", "Slot", "batch_lock", "finished_record", "parse_devices",
           "parse_shard", "plan_slots", "read_families", "read_folder", "read_manifest",
           "run_batch", "run_family", "run_local", "run_ray", "select_shard", "settings_hash",
           "summary_frame", "write_summary"]
