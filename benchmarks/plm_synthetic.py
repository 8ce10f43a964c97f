"""Benchmark: a PLM fit of a synthetic alignment of a given size (issue 3: L = 1000, N = 5000
must run on an 80 GB GPU). Records the memory estimate made before allocating, the peak
device memory the fit used, wall time and iterations.

The alignment is random but not uniform: each sequence is a noisy copy of one of a few
ancestors (at its own mutation rate), so the weights are not all 1 and the fit has structure
to learn. Size, not precision, is what this measures.

    python benchmarks/plm_synthetic.py --device cuda --length 1000 --sequences 5000 \
        -o benchmarks/results/plm_synthetic_cuda.json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, git_commit, machine_description

from potts_gwg.alphabet import PROTEIN_ALPHABET
from potts_gwg.atomic import atomic_open
from potts_gwg.fit.memory import format_bytes, plm_bytes
from potts_gwg.fit.plm import PlmSettings
from potts_gwg.pipeline import FitOptions, fit_stage

ANCESTORS = 20
# Each sequence's mutation rate is uniform in this range: near-copies of an ancestor share
# their weight, distant ones count fully (Neff/N about 0.6 at L = 300, N = 5000).
MUTATION_RATES = (0.05, 0.4)


def synthetic_alignment(path: Path, length: int, sequences: int, seed: int) -> None:
    """Write a PSICOV ``.aln`` (one sequence per line) of noisy copies of random ancestors."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(PROTEIN_ALPHABET.encode(), dtype=np.uint8)
    amino_acids = len(PROTEIN_ALPHABET) - 1  # the query (row 0) gets no gaps
    ancestors = rng.integers(0, amino_acids, size=(ANCESTORS, length))
    rows = ancestors[rng.integers(0, ANCESTORS, size=sequences)]
    rates = rng.uniform(*MUTATION_RATES, size=(sequences, 1))
    mutated = rng.random((sequences, length)) < rates
    rows[mutated] = rng.integers(0, len(PROTEIN_ALPHABET), size=int(mutated.sum()))
    rows[0] = ancestors[0]
    with open(path, "w") as stream:
        stream.writelines(letters[row].tobytes().decode() + "\n" for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--sequences", type=int, default=5000)
    parser.add_argument("--max-iterations", type=int, default=PlmSettings.max_iterations,
                        help="PLM iterations at most (default: the fit's own, %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=RESULTS / "plm_synthetic.json")
    arguments = parser.parse_args()
    settings = PlmSettings(max_iterations=arguments.max_iterations)
    n_states = len(PROTEIN_ALPHABET)
    estimate = plm_bytes(arguments.sequences, arguments.length, n_states, settings.history_size,
                         on_gpu=arguments.device != "cpu")
    print(f"L={arguments.length} N={arguments.sequences}: estimate {format_bytes(estimate)}",
          flush=True)
    with tempfile.TemporaryDirectory() as folder:
        alignment = Path(folder) / "synthetic.aln"
        synthetic_alignment(alignment, arguments.length, arguments.sequences, arguments.seed)
        start = time.perf_counter()
        summary = fit_stage(alignment, Path(folder) / "synthetic.npz",
                            FitOptions(device=arguments.device, seed=arguments.seed,
                                       plm=settings),
                            report=lambda message: print(message, flush=True))
        seconds = time.perf_counter() - start
    record = {"command": " ".join(sys.argv), "git_commit": git_commit(),
              "machine": machine_description(), "device": summary.device,
              "length": arguments.length, "n_sequences": arguments.sequences,
              "n_effective": round(summary.n_effective, 2), "seed": arguments.seed,
              "estimate_bytes": estimate, "peak_device_memory_bytes": summary.peak_memory_bytes,
              "peak_device_reserved_bytes": summary.peak_reserved_bytes,
              # Linux reports kilobytes; the whole process (Python, torch) is in it.
              "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
              "iterations": summary.iterations, "converged": summary.converged,
              "wall_seconds": round(seconds, 2)}
    peak = summary.peak_memory_bytes or record["peak_rss_bytes"]
    print(f"{summary.iterations} iterations in {seconds:.1f} s on {summary.device}; peak "
          f"{'device memory' if summary.peak_memory_bytes else 'RSS'} {format_bytes(peak)} "
          f"against the estimate {format_bytes(estimate)}")
    with atomic_open(arguments.output) as stream:
        json.dump(record, stream, indent=2)
        stream.write("\n")


if __name__ == "__main__":
    main()
