"""The share of a command's wall time that no fit can shorten: starting Python and importing
torch, starting the device (CUDA's context on a GPU), and `potts-gwg --version` (the command
line without torch). Each is a fresh process, ``--repeats`` times; the first run of each also
shows the cold start (files not yet in the page cache).

    python benchmarks/startup_times.py --device cuda -o startup_times_cuda.json
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also under `python -P`

from common import (RESULTS, git_commit, machine_description, positive_int,  # noqa: E402
                    timed_run, write_json)


def steps(device: str) -> dict[str, list[str]]:
    """name -> command of one fresh process."""
    potts_gwg = shutil.which("potts-gwg")
    return {
        "import torch": [sys.executable, "-c", "import torch"],
        f"import torch + first {device} operation": [
            sys.executable, "-c",
            f"import torch; torch.zeros(1, device={device!r}).sum().item()"],
        "potts-gwg --version": ([potts_gwg] if potts_gwg else
                                [sys.executable, "-m", "potts_gwg"]) + ["--version"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("-o", "--output", type=Path, default=None)
    arguments = parser.parse_args()
    records = []
    for name, command in steps(arguments.device).items():
        seconds = []
        for _ in range(arguments.repeats):
            status, _out, err, wall, _peak = timed_run(command)
            if status != 0:
                raise SystemExit(f"{name} failed: {err.strip()}")
            seconds.append(round(wall, 3))
        records.append({"step": name, "seconds": seconds,
                        "median_seconds": statistics.median(seconds)})
        print(f"{name}: {seconds} s", flush=True)
    write_json(arguments.output or RESULTS / f"startup_times_{arguments.device}.json", {
        "benchmark": "startup_times", "command": " ".join(sys.argv), "device": arguments.device,
        "git_commit": git_commit(), "machine": machine_description(), "records": records})


if __name__ == "__main__":
    main()
