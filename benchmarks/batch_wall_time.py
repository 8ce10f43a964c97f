"""Benchmark: wall time of `potts-gwg batch` over the 9 dev families, 1 vs 2 local workers.

Each configuration runs the batch command as a user would (a child process, a fresh output
folder, --no-resume), on the benchmark manifest as it is (../shared/data/manifest.tsv). The
threads per worker are part of each configuration and recorded: on a 2-core machine two
workers get one torch thread each so they do not oversubscribe the cores (--threads 1),
against one worker with both threads; a third run leaves the threads to the batch (elastic:
the cores shared among the busy workers, so the last family running takes both). Per-family
rows (L, N, Neff, device, wall and fit seconds, peak memory, precisions) come from the batch's
own summary.json.

    python benchmarks/batch_wall_time.py      # CPU: 1x2 threads, 2x1 thread, 2 elastic
    python benchmarks/batch_wall_time.py --gpu -o benchmarks/results/batch_wall_time_gpu.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, SHARED_DATA, git_commit, machine_description, timed_run  # noqa: E402

CPU_CONFIGURATIONS = [
    ("1 worker x 2 threads (cpu)", ["--devices", "cpu", "--workers", "1", "--threads", "2"]),
    ("2 workers x 1 thread (cpu)", ["--devices", "cpu", "--workers", "2", "--threads", "1"]),
    ("2 workers, elastic threads (cpu)", ["--devices", "cpu", "--workers", "2"]),
]
GPU_CONFIGURATIONS = [
    ("1 worker on cuda:0", ["--devices", "cuda:0", "--workers", "1"]),
    ("2 workers: cuda:0 + cpu", ["--devices", "cpu,cuda:0", "--workers", "2"]),
]
FAMILY_FIELDS = ("id", "status", "L", "N", "Neff", "device", "threads", "wall_s", "fit_s",
                 "iterations", "converged", "peak_memory_bytes", "peak_rss_bytes",
                 "peak_gpu_bytes", "top_L_sep6", "top_L5_sep6", "top_L_sep24", "message")


def run_configuration(label: str, options: list[str], manifest: Path, workdir: Path,
                      extra: list[str]) -> dict:
    outdir = workdir / "".join(character if character.isalnum() else "_" for character in label)
    command = [sys.executable, "-c", "from potts_gwg.cli.main import main; main()", "batch",
               str(manifest), "-o", str(outdir), "--no-resume", *options, *extra]
    print(f"{label}: {shlex.join(command[3:])}", file=sys.stderr, flush=True)
    status, stdout, stderr, seconds, peak = timed_run(command)
    record = {"configuration": label, "command": "potts-gwg " + shlex.join(command[3:]),
              "exit_status": status, "wall_seconds": round(seconds, 2),
              "peak_memory_bytes_batch_process": peak, "stdout": stdout.strip()}
    if status != 0:
        record["stderr_tail"] = stderr.strip()[-2000:]
    summary_path = outdir / "summary.json"
    if summary_path.exists():
        families = json.loads(summary_path.read_text())
        record["families"] = [{key: family.get(key) for key in FAMILY_FIELDS}
                              for family in families]
        record["sum_family_wall_seconds"] = round(sum(family["wall_s"] or 0.0
                                                      for family in families), 2)
        scored = [family["top_L_sep6"] for family in families
                  if family.get("top_L_sep6") is not None]
        record["mean_top_L_sep6"] = round(sum(scored) / len(scored), 4) if scored else None
        batch = json.loads((outdir / "batch.json").read_text())
        record["slots"] = batch.get("slots")
        record["batch_wall_seconds"] = batch.get("wall_s")
    print(f"  -> exit {status}, {seconds:.1f} s", file=sys.stderr, flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=SHARED_DATA / "manifest.tsv")
    parser.add_argument("--gpu", action="store_true",
                        help="GPU configurations (1 GPU worker; GPU + CPU workers).")
    parser.add_argument("--max-iterations", type=int,
                        help="Cap the fits (default: the fit's own default), for a quick try.")
    parser.add_argument("-o", "--output", type=Path)
    arguments = parser.parse_args()
    configurations = GPU_CONFIGURATIONS if arguments.gpu else CPU_CONFIGURATIONS
    output = arguments.output or RESULTS / \
        f"batch_wall_time_{'gpu' if arguments.gpu else 'cpu'}.json"
    extra = ["--max-iterations", str(arguments.max_iterations)] if arguments.max_iterations \
        else []
    with tempfile.TemporaryDirectory(prefix="batch-wall-time-") as workdir:
        runs = [run_configuration(label, options, arguments.manifest, Path(workdir), extra)
                for label, options in configurations]
    first = runs[0]["wall_seconds"]
    result = {
        "benchmark": "batch_wall_time",
        "description": "potts-gwg batch over the dev families (PLM fit + contacts + "
                       "evaluation per family), wall time of the whole command per "
                       "configuration; threads per worker as given in each command",
        "git_commit": git_commit(), "machine": machine_description(),
        "manifest": str(arguments.manifest), "runs": runs,
        "speedup_vs_first": {run["configuration"]: round(first / run["wall_seconds"], 3)
                             for run in runs[1:] if run["wall_seconds"]},
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    for run in runs:
        print(f"{run['configuration']:32s} {run['wall_seconds']:8.1f} s  "
              f"(exit {run['exit_status']}, mean top-L {run.get('mean_top_L_sep6')})")
    print(f"speed-up vs the first: {result['speedup_vs_first']} -> {output}")


if __name__ == "__main__":
    main()
