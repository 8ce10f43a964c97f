"""Sequence weights that correct for redundancy in an alignment.

w_n = 1 / #{m : identity(n, m) >= theta}, identity counted over the L query columns (a gap
matching a gap counts, as in CCMpred), so every sequence counts itself; Neff = Σ_n w_n.

Counting neighbours naively costs O(N²·L·q) (1.6e15 flops at N = 500 000, L = 300), so the
count is organised to skip pairs that provably cannot be neighbours, with the same result:

1. Identical rows are collapsed to one row with a multiplicity (they have the same count).
2. Identity >= theta means at most D mismatches (Hamming distance d <= D), and d is a metric:
   |d(i, c) - d(j, c)| <= d(i, j) for any centre c. Centres are drawn at random (in rounds,
   from the rows still far from every centre); every row joins its nearest centre, and the
   members of a centre, sorted by distance to it, are cut into shells (at most SHELL_MEMBERS
   rows spanning at most SHELL_WIDTH · D). A shell with distances in [a, b] can only hold
   neighbours of rows i with a - D <= d(i, c) <= b + D (annulus pruning); the same test
   against the PIVOTS centres nearest to c (every row's distance to every centre is kept)
   thins these candidates further. Every row is the member of exactly one shell and a
   candidate of every shell that may hold a neighbour of it, so each count equals that of the
   full comparison.

On a GPU, where every shell costs kernel launches and a host sync, all pairs are compared
instead when that is at most ``GPU_ALL_PAIRS_WORK`` multiply-adds (one family's alignment).

Mismatches are counted exactly, in chunks bounded by ``chunk_bytes``: by byte comparison on
CPU, as one-hot float32 matrix products (integers < 2**24) on other devices.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from .fit.inputs import encoded_sequences
from .fit.statistics import one_hot_rows
from .ordered_sums import ordered_sum
from .progress import progress_bar
from .settings import DEFAULT_THETA, integer

DEFAULT_CHUNK_BYTES = 256 * 2**20
CENTRES_PER_ROUND = 256      # centres drawn per round
MAX_ROUNDS = 4               # rounds of centres at most
MIN_PLACED_FRACTION = 0.02   # stop drawing centres when a round places fewer rows than this
SHELL_MEMBERS = 256          # most members per shell (fewer: more, smaller comparisons)
SHELL_WIDTH = 0.5            # a shell spans at most this fraction of D in distance
PIVOTS = 16                  # centres whose distances filter a shell's candidates
COMPARE_BLOCK_BYTES = 2**23   # bytes compared at once by the CPU kernel (stays in cache)
SHALLOW_NEFF_PER_LENGTH = 1.0  # below this, coevolution contacts are mostly noise
MAX_STATES = 256             # states are compared as uint8 bytes
KERNELS = (None, "compare", "matmul")  # None: compare on CPU, matmul elsewhere
CENTRE_SEED = 0              # centres are drawn with a fixed seed: the result never depends on it
# On a GPU, all pairs are compared when that is at most this many multiply-adds (U² · L·q):
# one-hot matrix products of that size take well under a second there, while the pruned
# path's thousands of small shells cost a kernel launch and a host sync each (CRY2_4I6E,
# U = 5 385, L·q = 9 618: 2.8e11).
GPU_ALL_PAIRS_WORK = 10**13


def sequence_weights(indices: np.ndarray | torch.Tensor, n_states: int,
                     theta: float = DEFAULT_THETA,
                     device: torch.device | str | None = None,
                     chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                     progress: bool | None = False, kernel: str | None = None
                     ) -> torch.Tensor:
    """Weights (N,) float32 on ``device`` for encoded sequences ``indices`` (N, L) (numpy or
    torch, integers in 0..n_states-1; anything else is a ``FitInputError``).

    ``theta`` in (0, 1] (1: only identical sequences are neighbours); anything else is a
    ValueError.
    ``chunk_bytes`` bounds each float32 block (one-hot rows or match counts); ``progress``
    shows a bar on stderr (None: only when stderr is a terminal). ``kernel`` ("compare" or
    "matmul", see ``_NeighbourCounter.mismatches``) only changes the speed; None picks by
    device.
    """
    if not 0.0 < theta <= 1.0:
        raise ValueError(f"theta must be in (0, 1], got {theta}")
    n_states = integer("n_states", n_states, least=1)
    if n_states > MAX_STATES:
        raise ValueError(f"n_states must be at most {MAX_STATES} (states are compared as "
                         f"bytes), got {n_states}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    is_tensor = torch.is_tensor(indices)
    device = torch.device(device) if device is not None else (
        indices.device if is_tensor else torch.device("cpu"))
    states = encoded_sequences(indices, n_states, device="cpu", dtype=torch.uint8).numpy()
    if states.shape[0] == 0:
        return torch.zeros(0, dtype=torch.float32, device=device)
    unique_rows, row_of_sequence, multiplicity = _collapse_duplicates(states)
    counter = _NeighbourCounter(torch.as_tensor(unique_rows).to(device), n_states,
                                torch.as_tensor(multiplicity, dtype=torch.float32).to(device),
                                theta, chunk_bytes, kernel)
    neighbours = counter.count(progress)
    return 1.0 / neighbours[torch.as_tensor(row_of_sequence).to(device)]


def shallow_alignment_note(n_effective: float, length: int) -> str | None:
    """A warning for alignments too shallow for reliable contacts (Neff/L below
    SHALLOW_NEFF_PER_LENGTH), or None."""
    ratio = n_effective / length
    if ratio >= SHALLOW_NEFF_PER_LENGTH:
        return None
    return (f"Neff/L = {ratio:.2f} is below {SHALLOW_NEFF_PER_LENGTH:g}: too few effective "
            "sequences per position for reliable contacts (expect few correct ones; a deeper "
            "alignment helps)")


def effective_number(weights: torch.Tensor) -> float:
    """Neff = Σ_n w_n."""
    return ordered_sum(weights)


def _collapse_duplicates(states: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique rows (U, L) uint8, each sequence's row (N,) and each row's multiplicity (U,)."""
    states = np.ascontiguousarray(states, dtype=np.uint8)
    keys = states.view(np.dtype((np.void, states.shape[1]))).ravel()
    _, first, row_of_sequence, multiplicity = np.unique(
        keys, return_index=True, return_inverse=True, return_counts=True)
    return states[first], row_of_sequence.ravel(), multiplicity


class _NeighbourCounter:
    """Weighted neighbour counts of U unique rows: Σ_m multiplicity_m [matches(n, m) >= θL]."""

    def __init__(self, rows: torch.Tensor, n_states: int, multiplicity: torch.Tensor,
                 theta: float, chunk_bytes: int, kernel: str | None = None):
        self.rows = rows
        self.kernel = kernel or ("compare" if rows.device.type == "cpu" else "matmul")
        self.rows_numpy = rows.numpy() if self.kernel == "compare" else None
        self.n_states = n_states
        self.multiplicity = multiplicity
        self.width = rows.shape[1] * n_states            # one-hot width L·q
        self.threshold = theta * rows.shape[1] - 1e-4     # identity >= θ <=> matches >= θL
        self.chunk_bytes = chunk_bytes
        # D: the largest mismatch count that still passes the same float32 comparison.
        passing = torch.arange(rows.shape[1] + 1, dtype=torch.float32) >= self.threshold
        self.max_mismatches = (rows.shape[1] - int(torch.argmax(passing.int()))
                               if bool(passing.any()) else -1)

    def one_hot(self, row_indices: torch.Tensor | slice) -> torch.Tensor:
        """(rows, L·q) float32 one-hot."""
        return one_hot_rows(self.rows[row_indices], self.n_states)

    def block_rows(self, n_columns: int) -> int:
        """Rows per chunk so that a chunk's one-hot and its (rows, n_columns) block fit."""
        return max(1, self.chunk_bytes // (4 * max(1, n_columns, self.width)))

    def count(self, progress: bool | None) -> torch.Tensor:
        n_rows, length = self.rows.shape
        device = self.rows.device
        neighbours = torch.zeros(n_rows, dtype=torch.float32, device=device)
        if self.max_mismatches < 0:
            return neighbours
        everyone = torch.arange(n_rows, device=device)
        if self.max_mismatches >= length // 2 or n_rows <= 4 * CENTRES_PER_ROUND or (
                self.kernel == "matmul" and device.type != "cpu"
                and n_rows ** 2 * self.width <= GPU_ALL_PAIRS_WORK):
            # Pruning would not pay: compare all pairs.
            step = self.block_rows(1)
            shells = ((everyone, everyone[start:start + step]) for start in range(0, n_rows, step))
        else:
            shells = self.shells(progress)
        with progress_bar(total=n_rows, desc="weights", unit="seq", enabled=progress) as bar:
            for candidates, members in shells:
                self.add_counts(neighbours, candidates, members)
                bar.update(int(members.numel()))
        return neighbours

    def add_counts(self, neighbours: torch.Tensor, candidates: torch.Tensor,
                   members: torch.Tensor) -> None:
        """neighbours[c] += Σ_{m in members, neighbour of c} multiplicity_m, for c in candidates."""
        step = self.block_rows(1)
        for first in range(0, int(members.numel()), step):
            chosen_members = members[first:first + step]
            member_weight = self.multiplicity[chosen_members]
            rows = self.block_rows(int(chosen_members.numel()))
            for start in range(0, int(candidates.numel()), rows):
                chosen = candidates[start:start + rows]
                passing = self.mismatches(chosen, chosen_members) <= self.max_mismatches
                neighbours[chosen] += passing.to(torch.float32) @ member_weight

    def mismatches(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """(|left|, |right|) int32 Hamming distances between two sets of rows (exact).

        "compare": byte comparisons in numpy, chunked (fastest on CPU: no one-hot to build);
        "matmul": L − one-hot products (fastest on GPU).
        """
        length = self.rows.shape[1]
        if self.kernel == "compare":
            a = self.rows_numpy[left.numpy()]
            b = self.rows_numpy[right.numpy()]
            counts = np.empty((len(a), len(b)), dtype=np.int32)
            step = max(1, min(self.chunk_bytes, COMPARE_BLOCK_BYTES) // max(1, len(b) * length))
            for start in range(0, len(a), step):
                counts[start:start + step] = (a[start:start + step, None, :] != b[None]).sum(
                    axis=-1, dtype=np.int32)
            return torch.from_numpy(counts)
        matches = self.one_hot(left) @ self.one_hot(right).T
        return (length - matches).round().to(torch.int32)

    def distances_to(self, centres: torch.Tensor, out: torch.Tensor, bar) -> None:
        """Fill ``out`` (centres, U) int16 with the Hamming distance of every row to each centre."""
        n_rows = self.rows.shape[0]
        step = self.block_rows(int(centres.numel()))
        for start in range(0, n_rows, step):
            block = torch.arange(start, min(n_rows, start + step), device=self.rows.device)
            out[:, start:start + step] = self.mismatches(centres, block).to(torch.int16)
            bar.update(int(block.numel()))

    def shells(self, progress: bool | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(candidate rows, member rows) pairs covering every possible neighbour pair once.

        Yielded one at a time, so only one shell's candidates are held.

        Centres are drawn in rounds among the rows farther than D from every centre so far;
        then each row joins its nearest centre and each centre's members are cut into shells.
        """
        n_rows = self.rows.shape[0]
        device = self.rows.device
        limit = self.max_mismatches
        generator = np.random.default_rng(CENTRE_SEED)
        nearest = torch.full((n_rows,), torch.iinfo(torch.int16).max, dtype=torch.int16,
                             device=device)
        owner = torch.zeros(n_rows, dtype=torch.long, device=device)
        # (centres, U) int16 distances of every row to every centre, filled round by round.
        distances = torch.empty((MAX_ROUNDS * CENTRES_PER_ROUND, n_rows), dtype=torch.int16,
                                device=device)
        centre_list: list[int] = []  # the row of each centre
        with progress_bar(total=MAX_ROUNDS * n_rows, desc="centres", unit="seq",
                          enabled=progress) as bar:
            for _ in range(MAX_ROUNDS):
                far = torch.nonzero(nearest.int() > limit).flatten().cpu().numpy()
                if far.size == 0:
                    break
                drawn = np.sort(generator.choice(far, size=min(CENTRES_PER_ROUND, far.size),
                                                 replace=False))
                round_distances = distances[len(centre_list):len(centre_list) + drawn.size]
                self.distances_to(torch.as_tensor(drawn, device=device), round_distances, bar)
                closest, which = round_distances.min(dim=0)
                closer = closest < nearest
                newly_placed = int(((closest.int() <= limit) & (nearest.int() > limit)).sum())
                owner[closer] = which[closer] + len(centre_list)
                nearest = torch.minimum(nearest, closest)
                centre_list.extend(drawn.tolist())
                if newly_placed < MIN_PLACED_FRACTION * n_rows:
                    break
        distances = distances[:len(centre_list)]
        length = self.rows.shape[1]
        order = torch.argsort(owner * (length + 1) + nearest.long())
        sorted_owner = owner[order]
        starts = torch.nonzero(torch.diff(sorted_owner, prepend=sorted_owner[:1] - 1))
        starts = starts.flatten().tolist()
        centre_rows = torch.as_tensor(centre_list, device=device)
        width = max(1, int(SHELL_WIDTH * limit))
        for start, stop in zip(starts, [*starts[1:], n_rows]):
            centre = int(sorted_owner[start])
            centre_distances, by_distance = torch.sort(distances[centre])
            # Pivots: the centre and the centres nearest to it.
            pivots = torch.argsort(distances[:, centre_rows[centre]].int())[:PIVOTS]
            sorted_distance = nearest[order[start:stop]].tolist()
            # Shells: at most SHELL_MEMBERS rows spanning at most SHELL_WIDTH · D distances.
            cuts = [start]
            for first in range(start, stop):
                if (first - cuts[-1] >= SHELL_MEMBERS or sorted_distance[first - start]
                        - sorted_distance[cuts[-1] - start] > width):
                    cuts.append(first)
            for first, last in zip(cuts, [*cuts[1:], stop]):
                members = order[first:last]
                window = torch.tensor([sorted_distance[first - start] - limit,
                                       sorted_distance[last - 1 - start] + limit],
                                      dtype=centre_distances.dtype, device=device)
                low = int(torch.searchsorted(centre_distances, window[0]))
                high = int(torch.searchsorted(centre_distances, window[1], right=True))
                candidates = by_distance[low:high]
                # |d(i, p) - d(j, p)| <= d(i, j) <= D for every pivot p and member j.
                member_distances = distances[pivots[:, None], members[None, :]].int()
                candidate_distances = distances[pivots[:, None], candidates[None, :]].int()
                keep = ((candidate_distances >= member_distances.min(dim=1).values[:, None]
                         - limit)
                        & (candidate_distances <= member_distances.max(dim=1).values[:, None]
                           + limit)).all(dim=0)
                yield candidates[keep], members
