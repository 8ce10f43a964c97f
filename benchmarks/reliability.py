"""Reliability report: reader fuzzing, kill-and-resume of a fit, device faults (JSON).

Sections (``--sections``, comma-separated; default ``fuzz,resume,devices``):

* ``fuzz`` — the property-based reader tests under a thorough hypothesis profile, through
  ``run_fuzzers`` of benchmarks/reliability_inputs.py (examples run, failing examples).
* ``resume`` — ``potts-gwg fit --method gwg`` of the shipped SH3 example with a checkpoint
  every ``--checkpoint-interval`` seconds (and ``--target-pearson 1``: exactly
  ``--max-iterations`` updates) is SIGKILLed ``--kills`` times, each after a random delay, and
  rerun with ``--resume`` until it finishes; the final model's h, J and meta (less timing
  fields) are compared with an uninterrupted run with the same seed. Where ``fit`` has no
  ``--resume``, the loop runs ``--method plm`` and says so: each rerun then starts afresh.
* ``devices`` — ``--device cuda`` without a GPU (CUDA hidden from the child), what ``--device
  auto`` says it took, an out-of-memory error injected into the fit stage (the message and
  exit status), and a real one: ``potts-gwg sample`` with more chains than the device can
  hold (on the CPU only where the kernel refuses such an allocation outright, i.e.
  vm.overcommit_memory = 0 and the request exceeds RAM + swap).
* ``big`` (not by default) — ``run_big_input`` of benchmarks/reliability_inputs.py.

    python benchmarks/reliability.py --kills 5 --seed 0
    python benchmarks/reliability.py --device cuda -o benchmarks/results/reliability_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO_ROOT, RESULTS, git_commit, machine_description, timed_run

EXAMPLE_MSA = REPO_ROOT / "data" / "PF00018_2O9S" / "PF00018_2O9S.fasta"
POTTS = [sys.executable, "-m", "potts_gwg"]
# Meta fields that may differ between an interrupted and an uninterrupted run by design.
TIMING_KEY = re.compile(r"(^|_)(s|seconds|wall|date|started|finished|elapsed|resumed?|resumes|"
                        r"kills)$", re.IGNORECASE)
CUDA_OOM_TEXT = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
                 "79.19 GiB of which 1.25 GiB is free.")
INJECTED_OOM = (
    "import sys, torch\n"
    "import potts_gwg.cli.fit as fit\n"
    "from potts_gwg.device import note_memory_estimate\n"
    "from potts_gwg.cli.main import main\n"
    "def stage(*args, **kwargs):\n"
    "    note_memory_estimate(12 * 2**30, 'a PLM fit of L=48, N=920')\n"
    f"    raise torch.OutOfMemoryError({CUDA_OOM_TEXT!r})\n"
    "fit.fit_stage = stage\n"
    "sys.argv[0] = 'potts-gwg'\n"
    "main()\n")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


# ----------------------------------------------------------------------------- fuzz

def fuzz_section(profile: str, seed: int) -> dict:
    try:
        from reliability_inputs import run_fuzzers
    except ImportError as error:
        return {"skipped": f"benchmarks/reliability_inputs.py is not available ({error})"}
    say(f"fuzz: reader fuzzers, hypothesis profile {profile}, seed {seed}")
    return run_fuzzers(profile, seed)


def big_section(seed: int) -> dict:
    try:
        from reliability_inputs import run_big_input
    except ImportError as error:
        return {"skipped": f"benchmarks/reliability_inputs.py is not available ({error})"}
    say("big: 500 000 x 300 generated alignment: read, encode, weight")
    return run_big_input(seed=seed, progress=False)


# ----------------------------------------------------------------------------- resume

def fit_help() -> str:
    return subprocess.run([*POTTS, "fit", "--help"], capture_output=True, text=True,
                          check=False).stdout


def method_choices(help_text: str) -> list[str]:
    match = re.search(r"--method \[([^\]]+)\]", help_text)
    return match.group(1).split("|") if match else []


def checkpoint_path(output: Path) -> Path:
    """The fit's checkpoint: the output path with .checkpoint.npz instead of .npz."""
    return output.with_name(output.name.removesuffix(".npz") + ".checkpoint.npz")


def checkpoint_iteration(path: Path) -> int | None:
    """The update count a PCD checkpoint holds (its meta JSON), None if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return int(json.loads(str(archive["meta"]))["iteration"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


def strip_timing(meta):
    """``meta`` without the fields that record when or how often a run was interrupted."""
    if isinstance(meta, dict):
        return {key: strip_timing(value) for key, value in meta.items()
                if not TIMING_KEY.search(key)}
    if isinstance(meta, list):
        return [strip_timing(value) for value in meta]
    return meta


def dropped_keys(meta, prefix: str = "") -> list[str]:
    dropped = []
    if isinstance(meta, dict):
        for key, value in meta.items():
            if TIMING_KEY.search(key):
                dropped.append(prefix + key)
            else:
                dropped.extend(dropped_keys(value, f"{prefix}{key}."))
    return dropped


def compare_models(reference: Path, resumed: Path) -> dict:
    from potts_gwg.io.model_file import load_model

    first, second = load_model(reference), load_model(resumed)
    meta_first, meta_second = strip_timing(first.meta), strip_timing(second.meta)
    different = sorted(key for key in set(meta_first) | set(meta_second)
                       if meta_first.get(key) != meta_second.get(key))
    same_shape = first.h.shape == second.h.shape and first.J.shape == second.J.shape
    return {
        "h_identical": bool(np.array_equal(first.h, second.h)),
        "J_identical": bool(np.array_equal(first.J, second.J)),
        "max_abs_difference_h": float(np.abs(first.h - second.h).max()) if same_shape else None,
        "max_abs_difference_J": float(np.abs(first.J - second.J).max()) if same_shape else None,
        "meta_identical_without_timing": not different,
        "meta_fields_different": {key: [meta_first.get(key), meta_second.get(key)]
                                  for key in different},
        "meta_fields_ignored": sorted(set(dropped_keys(first.meta)) |
                                      set(dropped_keys(second.meta))),
    }


def resume_section(kills: int, seed: int, method: str, max_iterations: int, interval: float,
                   device: str, threads: int, workdir: Path, fit_arguments: list[str]) -> dict:
    help_text = fit_help()
    supported = "--resume" in help_text and "--checkpoint-interval" in help_text and \
        method in method_choices(help_text)
    if not supported:
        say(f"resume: fit has no --resume/--checkpoint-interval or no --method {method} yet: "
            "exercising the kill loop with --method plm (each rerun starts afresh)")
        method = "plm"
    base = ["fit", str(EXAMPLE_MSA), "--method", method, "--max-iterations", str(max_iterations),
            "--seed", str(seed), "--device", device, "--threads", str(threads), "--quiet"]
    if supported:
        base += ["--checkpoint-interval", str(interval)]
    if method in ("gwg", "gibbs"):
        base += ["--target-pearson", "1"]  # no early stop: exactly --max-iterations updates
    base += fit_arguments

    reference = workdir / "reference" / "model.npz"
    reference.parent.mkdir(parents=True)
    command = [*POTTS, *base, "-o", str(reference)]
    say(f"resume: uninterrupted reference: potts-gwg {shlex.join(command[3:])}")
    status, _out, err, reference_seconds, reference_rss = timed_run(command)
    if status != 0:
        return {"error": f"the reference fit failed (exit {status}): {last_line(err)}",
                "command": "potts-gwg " + shlex.join(command[3:])}
    startup = min(timed_run([*POTTS, "--version"])[3] for _ in range(2))

    output = workdir / "resumed" / "model.npz"
    output.parent.mkdir(parents=True)
    rng = random.Random(seed)
    runs, killed = [], 0
    while len(runs) < kills + 5:
        arguments = [*base, "-o", str(output)] + (["--resume"] if supported and runs else [])
        started = time.perf_counter()
        process = subprocess.Popen([*POTTS, *arguments], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        delay = None
        if killed < kills:
            # After the start-up, within a share of the fit's own time: every run makes
            # some progress and the kills fall at different points of the fit.
            delay = startup + rng.uniform(0.1, 1.0) * max(reference_seconds - startup, 1.0) \
                / (kills + 1)
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                killed += 1
        _stdout, stderr = process.communicate()
        checkpoint = checkpoint_path(output)
        run = {"run": len(runs) + 1, "resume": "--resume" in arguments,
               "kill_after_s": None if delay is None else round(delay, 2),
               "killed": process.returncode == -signal.SIGKILL,
               "exit_status": process.returncode,
               "wall_s": round(time.perf_counter() - started, 2),
               "checkpoint_present": checkpoint.exists(),
               "checkpoint_iteration": checkpoint_iteration(checkpoint)
               if checkpoint.exists() else None,
               "files_left": sorted(path.name for path in output.parent.iterdir()),
               "stderr_tail": stderr.strip().splitlines()[-3:]}
        runs.append(run)
        ending = f"SIGKILL after {run['kill_after_s']} s" if run["killed"] else \
            f"exit {process.returncode}"
        where = f"at update {run['checkpoint_iteration']}" if run["checkpoint_present"] else \
            "absent"
        say(f"resume: run {run['run']}{' --resume' if run['resume'] else ''}: {ending}, "
            f"checkpoint {where}")
        if not run["killed"]:
            break
    finished = bool(runs) and runs[-1]["exit_status"] == 0
    record = {
        "resume_supported": supported, "method": method, "seed": seed,
        "max_iterations": max_iterations,
        "checkpoint_interval_s": interval if supported else None, "device": device,
        "threads": threads,
        "command": "potts-gwg " + shlex.join([*base, "-o", "OUT"]) +
                   (" [--resume after the first run]" if supported else ""),
        "reference_wall_s": round(reference_seconds, 2),
        "reference_peak_rss_bytes": reference_rss,
        "startup_s": round(startup, 2), "kills_requested": kills,
        "kills": sum(run["killed"] for run in runs),
        "resumes": sum(run["resume"] for run in runs), "finished": finished, "runs": runs,
    }
    if finished:
        record["comparison"] = compare_models(reference, output)
        comparison = record["comparison"]
        record["identical"] = comparison["h_identical"] and comparison["J_identical"] and \
            comparison["meta_identical_without_timing"]
        record["temporary_files_left"] = [name for name in runs[-1]["files_left"]
                                          if name.endswith(".tmp")]
    else:
        record["identical"] = False
    return record


# ----------------------------------------------------------------------------- devices

def device_section(workdir: Path) -> dict:
    import torch

    record: dict = {"cuda_available": torch.cuda.is_available()}
    output = workdir / "device"
    output.mkdir()
    quick = ["fit", str(EXAMPLE_MSA), "--max-iterations", "1", "--threads", "1"]

    hidden = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    command = [*POTTS, *quick, "--device", "cuda", "-o", str(output / "cuda.npz")]
    result = subprocess.run(command, capture_output=True, text=True, env=hidden, check=False)
    record["device_cuda_without_gpu"] = {
        "command": "CUDA_VISIBLE_DEVICES= potts-gwg " + shlex.join(command[3:]),
        "exit_status": result.returncode, "stderr": result.stderr.strip(),
        "expected": result.returncode == 4 and result.stderr.startswith("error: --device cuda")
        and not (output / "cuda.npz").exists()}

    command = [*POTTS, *quick, "--device", "auto", "-o", str(output / "auto.npz")]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    said = [line for line in result.stderr.splitlines() if line.startswith("device: auto")]
    record["device_auto"] = {"command": "potts-gwg " + shlex.join(command[3:]),
                             "exit_status": result.returncode,
                             "announcement": said[0] if said else None,
                             "expected": result.returncode == 0 and len(said) == 1}

    command = [sys.executable, "-c", INJECTED_OOM, *quick, "-o", str(output / "oom.npz")]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    record["injected_cuda_oom_in_fit"] = {
        "how": "fit_stage replaced by one that notes a 12 GiB estimate and raises "
               "torch.OutOfMemoryError with CUDA's message",
        "exit_status": result.returncode, "stderr": result.stderr.strip(),
        "expected": result.returncode == 3 and len(result.stderr.strip().splitlines()) == 1
        and "estimated to need about 12.0 GiB" in result.stderr
        and "Traceback" not in result.stderr}

    record["real_oom_in_sample"] = [real_oom("cpu", output)]
    if torch.cuda.is_available():
        record["real_oom_in_sample"].append(real_oom("cuda", output))
    return record


def real_oom(device: str, output: Path) -> dict:
    """``potts-gwg sample`` with chains whose start states alone (chains x L int64) need
    four times the device's memory: the allocation fails at once."""
    import torch

    length = 48  # the example model's L
    if device == "cuda":
        capacity = torch.cuda.get_device_properties(0).total_memory
    else:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text()
                       .splitlines())
        capacity = sum(int(meminfo[key].split()[0]) * 1024 for key in ("MemTotal", "SwapTotal"))
        overcommit = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
        if overcommit != "0":
            return {"device": device, "skipped": f"vm.overcommit_memory = {overcommit}: a huge "
                    "allocation might be granted and then fill the memory"}
    chains = 4 * capacity // (8 * length)
    model = output / "sh3.npz"
    if not model.exists():
        subprocess.run([*POTTS, "fit", str(EXAMPLE_MSA), "--max-iterations", "2", "--device",
                        "cpu", "--quiet", "-o", str(model)], check=True, capture_output=True)
    command = [*POTTS, "sample", str(model), "-n", "1", "--chains", str(chains), "--device",
               device, "--no-progress", "-o", str(output / f"samples_{device}.fasta")]
    status, _out, err, seconds, peak = timed_run(command)
    return {"device": device, "command": "potts-gwg " + shlex.join(command[3:]),
            "device_memory_bytes": capacity, "exit_status": status, "stderr": err.strip(),
            "wall_s": round(seconds, 2), "peak_rss_bytes": peak,
            "expected": status == 3 and err.startswith("error: out of memory on ")
            and "Traceback" not in err
            and not (output / f"samples_{device}.fasta").exists()}


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default="fuzz,resume,devices",
                        help="comma-separated: fuzz, resume, devices, big")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs in the resume loop")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the fits, the kill times and the fuzzers")
    parser.add_argument("--method", default="gwg", help="fit method of the resume loop")
    parser.add_argument("--max-iterations", type=int, default=300)
    parser.add_argument("--checkpoint-interval", type=float, default=0.5, metavar="SECONDS")
    parser.add_argument("--device", default="cpu", help="device of the resume loop")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each fit")
    parser.add_argument("--fit-args", default="", metavar="'ARGS'",
                        help="more options for the resume loop's fit, e.g. '--chains 256'")
    parser.add_argument("--profile", default="thorough", help="hypothesis profile of fuzz")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS / "reliability_cpu.json")
    arguments = parser.parse_args(argv)
    sections = [name.strip() for name in arguments.sections.split(",") if name.strip()]
    unknown = set(sections) - {"fuzz", "resume", "devices", "big"}
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    record = {"command": shlex.join(["python", "benchmarks/reliability.py",
                                     *(argv if argv is not None else sys.argv[1:])]),
              "git_commit": git_commit(), "machine": machine_description(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sections": {}}
    with tempfile.TemporaryDirectory(prefix="reliability-") as folder:
        workdir = Path(folder)
        for name in sections:
            started = time.perf_counter()
            if name == "fuzz":
                result = fuzz_section(arguments.profile, arguments.seed)
            elif name == "resume":
                result = resume_section(arguments.kills, arguments.seed, arguments.method,
                                        arguments.max_iterations, arguments.checkpoint_interval,
                                        arguments.device, arguments.threads,
                                        workdir / "resume", shlex.split(arguments.fit_args))
            elif name == "devices":
                result = device_section(workdir)
            else:
                result = big_section(arguments.seed)
            result["section_wall_s"] = round(time.perf_counter() - started, 1)
            record["sections"][name] = result
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(record, indent=2) + "\n")
    say(f"-> {arguments.output}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
