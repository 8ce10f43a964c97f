"""Benchmark: peak memory of PLM fits (`fit --method plm`) and PCD fits (`fit --method gwg`,
plain steps and Adam) against the estimate the fit checks before allocating
(``potts_gwg.fit.memory.fit_bytes``, plus on a CPU the allocator's slack), on synthetic
alignments.

Each run is a fresh child process: a tiny fit first (libraries and allocator warmed up),
then the measured fit. PLM: a few more L-BFGS iterations than its history holds (the peak
needs a full history), N = ``--plm-sequences``. PCD: ``--init independent`` (so the PLM
fit's own peak does not hide the PCD one) with a few updates, a checkpoint every update and
a Pearson check every other. On a CPU the
measure is the peak resident memory above the process's size before the fit, on a GPU the
peak device memory. Run it on an otherwise idle machine: under load the kernel's high-water
mark of a short-lived peak came out low (1.5 instead of 8 coupling-sized arrays).

    python benchmarks/fit_memory.py --lengths 200,300 -o benchmarks/results/fit_memory_cpu.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, git_commit, machine_description, positive_int
from plm_synthetic import synthetic_alignment

from potts_gwg.allocator import keep_freed_memory
from potts_gwg.alphabet import PROTEIN_ALPHABET
from potts_gwg.atomic import atomic_open
from potts_gwg.fit.memory import allocator_slack, fit_bytes
from potts_gwg.fit.pcd import PcdSettings
from potts_gwg.fit.plm import PlmSettings
from potts_gwg.pipeline import FitOptions, fit_stage

FITS = ("plm", "sgd", "adam")  # PLM, and PCD with either optimiser
PLM_HISTORY = 5
PLM_ITERATIONS = PLM_HISTORY + 4


def fit_once(folder: Path, length: int, sequences: int, options: FitOptions):
    alignment = folder / f"synthetic_{length}.aln"
    synthetic_alignment(alignment, length, sequences, seed=0)
    return fit_stage(alignment, folder / f"model_{length}.npz", options,
                     report=lambda _: None)


def measure(length: int, sequences: int, chains: int, fit: str, device: str) -> dict:
    """One measured fit in this process: what it used and what was estimated."""
    keep_freed_memory()  # as the potts-gwg command does: the estimate must cover its peak
    import torch

    torch.set_num_threads(1)
    if fit == "plm":
        options = FitOptions(method="plm", device=device, plm=PlmSettings(
            max_iterations=PLM_ITERATIONS, tolerance=0.0, history_size=PLM_HISTORY))
    else:
        options = FitOptions(method="gwg", device=device, init="independent",
                             checkpoint_interval=1e-9, pcd=PcdSettings(
                                 n_chains=chains, steps=2, optimizer=fit, max_iterations=4,
                                 check_every=2, target_pearson=None))
    with tempfile.TemporaryDirectory() as folder:
        fit_once(Path(folder), 3, sequences, options)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        summary = fit_once(Path(folder), length, sequences, options)
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    estimate = fit_bytes(sequences, length, len(PROTEIN_ALPHABET), PLM_HISTORY,
                         pcd_chains=None if fit == "plm" else chains, plm_init=False,
                         adam=fit == "adam", on_gpu=device != "cpu"
                         ) + allocator_slack(torch.device(device))
    array_bytes = (length * len(PROTEIN_ALPHABET)) ** 2 * 4
    peak = summary.peak_memory_bytes or peak_rss - before
    return {"length": length, "n_sequences": sequences,
            "chains": None if fit == "plm" else chains, "fit": fit,
            "iterations": summary.iterations,
            "device": summary.device, "estimate_bytes": estimate,
            "peak_bytes": peak, "peak_reserved_bytes": summary.peak_reserved_bytes,
            "peak_is": "device memory" if summary.peak_memory_bytes else
            "resident memory above the process's size before the fit",
            "coupling_array_bytes": array_bytes,
            "estimate_arrays": round(estimate / array_bytes, 2),
            "peak_arrays": round(peak / array_bytes, 2),
            # on a GPU what the fit takes from the device is what its caching allocator holds
            "estimate_covers_peak": estimate >= (summary.peak_reserved_bytes or peak)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lengths", default="200,300", help="comma-separated L values")
    parser.add_argument("--sequences", type=positive_int, default=200,
                        help="sequences of the PCD fits' alignments")
    parser.add_argument("--plm-sequences", type=positive_int, default=2000,
                        help="sequences of the PLM fits' alignments (their (N, L·q) arrays "
                        "are part of the estimate)")
    parser.add_argument("--chains", type=positive_int, default=16)
    parser.add_argument("--fits", default=",".join(FITS),
                        help=f"comma-separated, of {', '.join(FITS)}")
    parser.add_argument("--child", nargs=2, metavar=("L", "FIT"), help=argparse.SUPPRESS)
    parser.add_argument("-o", "--output", type=Path, default=RESULTS / "fit_memory.json")
    arguments = parser.parse_args()
    fits = arguments.fits.split(",")
    if not set(fits) <= set(FITS):
        parser.error(f"--fits {arguments.fits!r}: each must be one of {', '.join(FITS)}")
    if arguments.child:
        length, fit = arguments.child
        sequences = arguments.plm_sequences if fit == "plm" else arguments.sequences
        print(json.dumps(measure(int(length), sequences, arguments.chains, fit,
                                 arguments.device)))
        return
    runs = []
    for length in (int(value) for value in arguments.lengths.split(",")):
        for fit in fits:
            completed = subprocess.run(
                [sys.executable, __file__, "--child", str(length), fit,
                 "--device", arguments.device, "--sequences", str(arguments.sequences),
                 "--plm-sequences", str(arguments.plm_sequences),
                 "--chains", str(arguments.chains)],
                capture_output=True, text=True)
            if completed.returncode != 0:  # keep the child's own words (a one-shot GPU run)
                print(completed.stderr, file=sys.stderr, flush=True)
                runs.append({"length": length, "fit": fit, "status": "failed",
                             "exit_status": completed.returncode,
                             "error": completed.stderr.strip()[-4000:]})
            else:
                run = json.loads(completed.stdout.splitlines()[-1])
                print(f"L={length} {fit}: peak {run['peak_arrays']} coupling-sized "
                      f"arrays, estimate {run['estimate_arrays']}", flush=True)
                runs.append(run)
            record = {"command": " ".join(sys.argv), "git_commit": git_commit(),
                      "machine": machine_description(), "runs": runs}
            with atomic_open(arguments.output) as stream:  # after every run: a time limit
                json.dump(record, stream, indent=2)       # loses only the one running
                stream.write("\n")
    if any(run.get("status") == "failed" for run in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
