"""Helpers shared by the benchmark scripts: the dev-set manifest, run records, timing."""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
RESULTS = REPO_ROOT / "benchmarks" / "results"


@dataclass
class Family:
    id: str
    msa: Path
    structure: Path
    chain: str | None
    query_arguments: list[str]


def dev_families(data: Path = SHARED_DATA) -> list[Family]:
    """The families of ../shared/data/manifest.tsv with the CLI options that select the query."""
    families = []
    with open(data / "manifest.tsv", newline="") as stream:
        for row in csv.DictReader(stream, delimiter="\t"):
            folder = data / "families" / row["id"]
            kind, _, value = row["query"].partition(":")
            query_arguments = {"first": [], "index": ["--query-index", value],
                               "id": ["--query", value],
                               "file": ["--query-file", str(folder / value)]}[kind]
            chain = None if row["chain"] in ("", "(blank)") else row["chain"]
            families.append(Family(row["id"], folder / row["msa_file"],
                                   folder / row["structure_file"], chain, query_arguments))
    return families


# Å: a pair of resolved columns that native_contacts.tsv does not list (its distance is >= 8 Å).
NOT_A_CONTACT = 99.0


def native_distances(family: Family) -> np.ndarray:
    """(L, L) Cβ distances as the data's own truth has them (../shared/data/README.md): the
    pairs of ``native_contacts.tsv`` at their distance, other pairs of resolved columns at
    NOT_A_CONTACT, pairs with a column that ``mapping.tsv`` marks ``has_coord = 0`` NaN
    (unknown). ``contacts --pdb`` aligns the query to the structure itself instead; on
    CRY2_4I6E the two differ (benchmarks/README.md)."""
    folder = family.msa.parent
    with open(folder / "mapping.tsv", newline="") as stream:
        resolved = np.array([row["has_coord"] == "1"
                             for row in csv.DictReader(stream, delimiter="\t")])
    distances = np.full((len(resolved), len(resolved)), NOT_A_CONTACT)
    distances[~resolved, :] = np.nan
    distances[:, ~resolved] = np.nan
    with open(folder / "native_contacts.tsv", newline="") as stream:
        for row in csv.DictReader(stream, delimiter="\t"):
            i, j = int(row["i"]) - 1, int(row["j"]) - 1
            distances[i, j] = distances[j, i] = float(row["distance"])
    return distances


def select_families(ids: str | None) -> list[Family]:
    """The dev families named in a comma-separated list (all of them for None), in order."""
    families = dev_families()
    if ids:
        wanted = ids.split(",")
        unknown = sorted(set(wanted) - {family.id for family in families})
        if unknown:
            raise SystemExit(f"unknown family id(s): {', '.join(unknown)} "
                             f"(known: {', '.join(family.id for family in families)})")
        families = [family for family in families if family.id in wanted]
    return families


def int_at_least(minimum: int):
    """argparse type: an integer >= ``minimum`` (so 0 cannot silently mean 'the default')."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    parse.__name__ = f"integer >= {minimum}"  # argparse names the type in its messages
    return parse


positive_int = int_at_least(1)


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_description() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
            "date": datetime.date.today().isoformat(),
            "load_average_1min": round(os.getloadavg()[0], 2)}


def timed_run(command: list[str], env: dict[str, str] | None = None,
              cwd: Path | None = None) -> tuple[int, str, str, float, int]:
    """Run a command (in ``env`` and ``cwd``, default ours); return (exit status, stdout,
    stderr, wall seconds, peak RSS bytes).

    The child's own peak resident memory comes from wait4's rusage (Linux: kilobytes).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env,
                                   cwd=cwd)
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return process.returncode, out.read(), err.read(), seconds, usage.ru_maxrss * 1024


def write_json(path: Path, value) -> None:
    """``value`` as indented JSON at ``path``, atomically: a benchmark stopped by a time limit
    while writing leaves its previous file, never a truncated one."""
    from potts_gwg.atomic import atomic_open

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as stream:
        stream.write(json.dumps(value, indent=1) + "\n")
