"""Wall time of short `potts-gwg` commands on the shipped example, this tree against a
baseline commit in the same run.

Both trees are installed (no dependencies, not editable) into temporary folders and run as
``python -m potts_gwg`` with that folder first on the path; the runs alternate, baseline then
this tree, ``--repeats`` times, so that a machine getting busier slows both alike. What it
measures is mostly start-up: importing the command's modules (torch alone is ~2 s on 2 cores).

    python benchmarks/cli_startup.py --baseline e72651d -o benchmarks/results/cli_startup_cpu.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import (REPO_ROOT, RESULTS, git_commit, machine_description, positive_int,
                    timed_run, write_json)

EXAMPLE = REPO_ROOT / "data" / "PF00018_2O9S"


def install(source: Path, target: Path) -> Path:
    """``source`` (a checkout) installed into ``target``; returns the folder to put on the
    path. Not editable: an editable install's import hook could serve the other tree."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(source)],
                   check=True)
    return target


def commands(workdir: Path, model: Path) -> dict[str, list[str]]:
    """name -> arguments of ``potts-gwg`` (the fit writes into ``workdir``)."""
    return {
        "--help": ["--help"],
        "--version": ["--version"],
        "fit --help": ["fit", "--help"],
        "contacts --pdb": ["contacts", str(model), "--pdb", str(EXAMPLE / "2O9S_A.pdb"),
                           "-o", str(workdir / "contacts.tsv")],
        "fit (plm)": ["fit", str(EXAMPLE / "PF00018_2O9S.fasta"), "-o",
                      str(workdir / "fit.npz"), "--threads", "2", "-q"],
    }


def run_tree(path: Path, arguments: list[str]) -> float:
    """Wall seconds of ``python -m potts_gwg ARGUMENTS`` importing the package from ``path``
    (run in ``path``: from the checkout, ``-c`` would import the checkout's package)."""
    environment = dict(os.environ, PYTHONPATH=str(path))
    code = ("import sys, runpy; import potts_gwg.cli.main as m; "
            f"assert m.__file__.startswith({str(path)!r}), m.__file__; "
            "runpy.run_module('potts_gwg', run_name='__main__')")
    status, _out, err, seconds, _peak = timed_run([sys.executable, "-c", code, *arguments],
                                                  env=environment, cwd=path)
    if status != 0:
        raise SystemExit(f"{' '.join(arguments)} failed with the tree at {path}: {err.strip()}")
    return seconds


def summary(times: list[float]) -> dict:
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
            "runs_s": [round(value, 3) for value in times]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="Commit to compare with.")
    parser.add_argument("--repeats", type=positive_int, default=7)
    parser.add_argument("-o", "--output", type=Path, default=RESULTS / "cli_startup_cpu.json")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as scratch:
        scratch = Path(scratch)
        checkout = scratch / "baseline-checkout"
        subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--quiet", "--detach",
                        str(checkout), arguments.baseline], check=True)
        try:
            trees = {"baseline": install(checkout, scratch / "baseline"),
                     "this tree": install(REPO_ROOT, scratch / "current")}
        finally:
            subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force",
                            str(checkout)], check=True)
        model = scratch / "model.npz"
        run_tree(trees["this tree"], ["fit", str(EXAMPLE / "PF00018_2O9S.fasta"), "-o",
                                      str(model), "-q"])
        times = {name: {tree: [] for tree in trees}
                 for name in commands(scratch, model)}
        for repeat in range(arguments.repeats):
            for name, command in commands(scratch, model).items():
                for tree, path in trees.items():
                    times[name][tree].append(run_tree(path, command))
            print(f"repeat {repeat + 1}/{arguments.repeats} done", file=sys.stderr, flush=True)
    results = {}
    for name, by_tree in times.items():
        results[name] = {tree: summary(values) for tree, values in by_tree.items()}
        results[name]["speedup_median"] = round(
            results[name]["baseline"]["median_s"] / results[name]["this tree"]["median_s"], 2)
        print(f"{name:16s} baseline {results[name]['baseline']['median_s']:6.2f} s   "
              f"this tree {results[name]['this tree']['median_s']:6.2f} s   "
              f"(median of {arguments.repeats})")
    write_json(arguments.output, {
        "benchmark": "cli_startup",
        "description": "wall seconds of `python -m potts_gwg ...` on the shipped example "
                       "(PF00018_2O9S), baseline commit and this tree alternating",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "git_commit": git_commit(), "baseline_commit": arguments.baseline,
        "machine": machine_description(), "repeats": arguments.repeats, "results": results})
    print(f"-> {arguments.output}")


if __name__ == "__main__":
    main()
