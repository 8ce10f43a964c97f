"""Memory estimates made before allocating, so a fit that cannot fit is refused up front.

The estimate counts the arrays a fit holds at its peak (bytes, float32 = 4). It errs on the
high side; the refusal gives the estimate, what is available, and the largest L that would
fit with the same number of sequences.
"""

from __future__ import annotations

import os
import re

import torch

from ..allocator import TRIM_THRESHOLD_BYTES
from ..device import note_memory_estimate
from ..errors import InputError, ResourceError

FLOAT_BYTES = 4
INDEX_BYTES = 8
WEIGHTS_CHUNK_BYTES = 256 * 2**20
# Full (L·q)² coupling-sized arrays alive at once besides the L-BFGS history: the point and
# its gradient, the search direction, the trial point and its gradient (L-BFGS reuses these
# buffers; the gradient is symmetrised in place), and one for the temporaries and the runtime.
# Measured peak (benchmarks/fit_memory.py, N = 2000, history 5): 16.4 and 16.1 such arrays at
# L = 200 and 300, estimates 17.8 and 17.1.
PLM_COUPLING_COPIES = 6
# (N, L·q) float32 arrays: the logits and log-probabilities buffers (the latter becomes the
# logit gradient in place), and one for the temporaries of their reductions; on a GPU also the
# one-hot rows the logits are multiplied from.
PLM_SEQUENCE_COPIES = 3
PLM_GPU_SEQUENCE_COPIES = 1
# Coupling-sized arrays of a PCD fit (plain steps): the parameters, the data's and the chains'
# pair frequencies (the latter becomes the gradient), their sum over the diagnostic window,
# the start state the caller keeps (parameters and window), and transients while the chains'
# energy is built and while J is returned. Measured peak: 8.3 such arrays on a CPU (L = 200 and
# 300, few sequences and chains, with checkpoints: benchmarks/fit_memory.py), 9.14 on an H200
# (L = 300, 2026-12-04), where 9 copies estimated 9.05: one more there for the GPU's transients.
PCD_COUPLING_COPIES = 9
PCD_GPU_COUPLING_COPIES = 1
# Adam adds its two moments, the caller's start copies of them, the square-root temporary and
# a checkpoint's copies: measured 14.4 arrays in all.
PCD_ADAM_COUPLING_COPIES = 6
# (B, L·q) float32 arrays per chain: local fields, proposal differences, one-hot rows.
PCD_CHAIN_COPIES = 4
# On a CPU, freed memory the command's allocator keeps for reuse (potts_gwg.allocator: up to
# its trim threshold at the top of the heap): measured 1.7 and 2.7 coupling-sized arrays (120
# and 190 MB) above the glibc-default PCD peak at L = 200 in two runs (benchmarks/fit_memory.py).
HOST_ALLOCATOR_SLACK_BYTES = TRIM_THRESHOLD_BYTES
SIZE_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def plm_bytes(n_sequences: int, length: int, n_states: int, history_size: int,
              on_gpu: bool = False) -> int:
    """Peak bytes of a PLM fit of an (N, L) alignment over q states (on a GPU if ``on_gpu``)."""
    parameters = (length * n_states) ** 2
    sequence_copies = PLM_SEQUENCE_COPIES + (PLM_GPU_SEQUENCE_COPIES if on_gpu else 0)
    per_sequence = n_sequences * length * (n_states * FLOAT_BYTES * sequence_copies
                                           + 2 * INDEX_BYTES)
    coupling_arrays = (PLM_COUPLING_COPIES + 2 * history_size) * parameters * FLOAT_BYTES
    weights_chunk = min(WEIGHTS_CHUNK_BYTES, FLOAT_BYTES * n_sequences ** 2)
    return coupling_arrays + per_sequence + weights_chunk


def fit_bytes(n_sequences: int, length: int, n_states: int, history_size: int,
              pcd_chains: int | None = None, plm_init: bool = True, adam: bool = False,
              on_gpu: bool = False) -> int:
    """Peak bytes of a fit: PLM (``pcd_chains`` None), or PCD with that many chains (and the
    Adam optimiser if ``adam``), after a PLM fit when ``plm_init`` (the two peaks do not
    overlap: PLM frees its arrays); on a GPU if ``on_gpu``."""
    plm = plm_bytes(n_sequences, length, n_states, history_size, on_gpu)
    if pcd_chains is None:
        return plm
    parameters = (length * n_states) ** 2
    copies = (PCD_COUPLING_COPIES + (PCD_ADAM_COUPLING_COPIES if adam else 0)
              + (PCD_GPU_COUPLING_COPIES if on_gpu else 0))
    pcd = (copies * parameters * FLOAT_BYTES
           + pcd_chains * length * n_states * FLOAT_BYTES * PCD_CHAIN_COPIES
           + n_sequences * length * (INDEX_BYTES + n_states * FLOAT_BYTES)
           + min(WEIGHTS_CHUNK_BYTES, FLOAT_BYTES * n_sequences ** 2))
    return max(plm, pcd) if plm_init else pcd


def largest_length(n_sequences: int, n_states: int, history_size: int, budget: int,
                   pcd_chains: int | None = None, plm_init: bool = True,
                   adam: bool = False, on_gpu: bool = False) -> int:
    """The largest L whose fit stays within ``budget`` bytes (0 if none)."""
    def needed(length: int) -> int:
        return fit_bytes(n_sequences, length, n_states, history_size, pcd_chains, plm_init,
                         adam, on_gpu)

    low, high = 0, 1
    while needed(high) <= budget:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if needed(middle) <= budget:
            low = middle
        else:
            high = middle
    return low


def parse_size(text: str) -> int:
    """``"8G"``, ``"512MiB"``, ``"1.5GB"`` or a number of bytes -> bytes (binary units)."""
    match = SIZE_PATTERN.match(text)
    if not match:
        raise InputError(f"--max-memory {text!r}: expected a size such as 8G, 512M or 1.5GiB")
    number, unit = match.groups()
    return int(float(number) * UNITS[(unit or "").lower()[:1]])


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device``: CUDA's free memory, or the host's MemAvailable."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} TiB"


def allocator_slack(device: torch.device) -> int:
    """Bytes beyond the live arrays that the process may hold on ``device``."""
    return HOST_ALLOCATOR_SLACK_BYTES if device.type == "cpu" else 0


def check_fit_memory(n_sequences: int, length: int, n_states: int, history_size: int,
                     device: torch.device, max_memory: int | None = None,
                     pcd_chains: int | None = None, plm_init: bool = True,
                     adam: bool = False) -> int:
    """Return the estimate (on a CPU with the allocator's slack), or raise
    :class:`ResourceError` saying what would fit."""
    slack = allocator_slack(device)
    on_gpu = device.type != "cpu"
    needed = fit_bytes(n_sequences, length, n_states, history_size, pcd_chains, plm_init,
                       adam, on_gpu) + slack
    kind = "a PLM fit" if pcd_chains is None else f"a PCD fit with {pcd_chains} chains"
    available = available_bytes(device)
    budget = min(available, max_memory) if max_memory is not None else available
    if needed > budget:
        limit = "--max-memory" if max_memory is not None and max_memory < available else \
            f"free memory on {device}"
        fits = largest_length(n_sequences, n_states, history_size, budget - slack,
                              pcd_chains, plm_init, adam, on_gpu)
        raise ResourceError(
            f"{kind} of L={length}, N={n_sequences} needs about {format_bytes(needed)} but "
            f"{limit} is {format_bytes(budget)}; the largest L that fits with this N is "
            f"{fits} (use a GPU with more memory, a shorter alignment, or a larger "
            f"--max-memory if memory is really free)")
    note_memory_estimate(needed, f"{kind} of L={length}, N={n_sequences}")
    return needed
