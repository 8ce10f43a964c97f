"""Pseudo-likelihood maximisation (PLM) for Potts models, full batch, L-BFGS, float32.

Objective (docs/README, as CCMpred/GREMLIN):
    Σ_n w_n Σ_i −log p(x_ni | x_n,−i)  +  λ_h ‖h‖²  +  λ_J Σ_{i<j} ‖J_ij‖²,
with p(x_i = a | x_−i) ∝ exp(h[i, a] + Σ_{j≠i} J[i, j, a, x_j]).

The couplings are held as one symmetric (L·q, L·q) matrix E with E[(i,a),(j,b)] = J[i,j,a,b]
and zero diagonal blocks. On CPU the conditional logits of all sequences are one
``embedding_bag`` over E's rows (each sequence picks the L rows (j, x_nj) and sums them:
N·L·L·q additions, no one-hot matmul with q times more work; in cache-sized column blocks, see
``row_sums``). On a GPU they are the float32 product of the (N, L·q) one-hot rows with E, and
the coupling gradient the transposed product: q times the additions, but dense matrix units
run them faster than the gathers (CRY2_4I6E on an H200: the gathers took 84 ms of each
evaluation; the products are full float32, TF32 off). L-BFGS works on E directly; the
gradient is symmetrised and masked, so E stays symmetric with J_ii = 0.
The rest of the code is the same on CPU and GPU; on CPU the fit is deterministic, also across
thread counts (the gathers add in a fixed order, long reductions are ``ordered_sums``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..device import resolve_device
from ..errors import NumericalError
from ..ordered_sums import ordered_dot, ordered_sum
from ..row_sums import summed_rows
from ..settings import PlmSettings, integer
from .inputs import encoded_sequences, sequence_weight_vector
from .statistics import one_hot_rows
from .lbfgs import clear_history, lbfgs_init, lbfgs_step

PSEUDOCOUNT_FOR_FIELDS = 1.0
CONVERGENCE_WINDOW = 5
# Block side of the in-place symmetrisation: 256 × 256 float32 (256 KiB) stays in a core's
# cache on CPU; on a GPU wider blocks keep the kernel launches few (16 MiB temporaries).
CPU_TILE, GPU_TILE = 256, 2048


@dataclass
class PlmResult:
    h: np.ndarray           # (L, q) float32
    J: np.ndarray           # (L, L, q, q) float32
    objective: float
    gradient_norm: float
    iterations: int
    evaluations: int
    converged: bool
    seconds: float


ProgressCallback = Callable[[int, float, float], None]


class _PlmObjective:
    """Holds the data on the device; evaluates the objective and its gradient together.

    The parameters are one flat vector: h (L·q) then E ((L·q)², row-major). The gradient is
    written by hand: d/dlogits = w_n (softmax − one-hot), and d/dE is the transposed lookup
    (another ``embedding_bag``, or the transposed one-hot product). Values are per site and
    effective sequence
    (``scale``): about 1 nat at the optimum, comparable across families.
    """

    def __init__(self, indices: torch.Tensor, weights: torch.Tensor, n_states: int,
                 settings: PlmSettings, one_hot_products: bool | None = None):
        length = indices.shape[1]
        self.length, self.n_states = length, n_states
        self.n_fields = length * n_states
        device = indices.device
        self.n_sequences = indices.shape[0]
        self.targets = indices.long().unsqueeze(2)                         # (N, L, 1)
        self.scale = 1.0 / (ordered_sum(weights) * length)
        self.scaled_weights = (weights.to(torch.float32) * self.scale).view(-1, 1, 1)
        self.lambda_h = settings.lambda_h * self.scale
        # ‖E‖² counts every pair twice: λ_J Σ_{i<j}‖J_ij‖² = (λ_J / 2) ‖E‖².
        self.lambda_j = settings.lambda_j * (length - 1) * self.scale
        self.sites = torch.arange(length, device=device)
        # A GPU multiplies by the one-hot rows (N, L·q), made with the buffers in the
        # parameters' dtype (exact: entries 0 and 1); ``one_hot_products`` overrides the
        # choice by device (the tests run both).
        self.one_hot_products = (device.type != "cpu" if one_hot_products is None
                                 else one_hot_products)
        if not self.one_hot_products:
            site_offsets = torch.arange(length, device=device) * n_states
            self.rows = (indices.long() + site_offsets).contiguous()      # (N, L) rows of E
            # The transpose of the lookup, for the gradient: row r of E collects the logit
            # gradients of the sequences that picked it. Precomputed once, so the gradient is
            # one more embedding_bag (a gather, fast) instead of autograd's scatter-add.
            picked = self.rows.reshape(-1)
            order = torch.argsort(picked, stable=True)
            self.picking_sequences = (order // length).contiguous()
            counts = torch.bincount(picked, minlength=self.n_fields)
            self.pick_offsets = torch.cumsum(counts, 0) - counts
        self.tile = CPU_TILE if device.type == "cpu" else GPU_TILE
        self.logits: torch.Tensor | None = None            # (N, L·q) buffers, made on first use
        self.log_probabilities: torch.Tensor | None = None  # (N, L, q)
        self.one_hot: torch.Tensor | None = None            # (N, L·q), with one-hot products

    def value_and_gradient(self, flat: torch.Tensor, gradient: torch.Tensor) -> float:
        """The objective at ``flat``; its gradient is written into ``gradient`` (same shape).

        The (N, L·q) logits and probabilities live in two buffers kept across evaluations,
        and the coupling gradient is built inside ``gradient``: no evaluation allocates a
        large array (fresh pages cost page faults on CPU) beyond small tiles.
        """
        n_sequences = self.n_sequences
        fields = flat[:self.n_fields].view(self.length, self.n_states)
        couplings_flat = flat[self.n_fields:]
        couplings = couplings_flat.view(self.n_fields, self.n_fields)
        if self.logits is None or self.logits.dtype != flat.dtype or \
                self.logits.device != flat.device:
            self.logits = flat.new_empty(n_sequences, self.n_fields)
            self.log_probabilities = flat.new_empty(n_sequences, self.length, self.n_states)
            if self.one_hot_products:
                self.one_hot = one_hot_rows(self.targets.squeeze(2), self.n_states, flat.dtype)
        if self.one_hot is None:
            summed_rows(self.rows, couplings, out=self.logits)
        else:
            with ieee_float32_products():
                torch.mm(self.one_hot, couplings, out=self.logits)
        logits = self.logits.view(n_sequences, self.length, self.n_states).add_(fields)
        log_probabilities = torch.log_softmax(logits, dim=2, out=self.log_probabilities)
        observed = log_probabilities.gather(2, self.targets)
        data_term = -ordered_sum(observed * self.scaled_weights)
        flat_fields = fields.reshape(-1)
        value = (data_term + self.lambda_h * ordered_dot(flat_fields, flat_fields)
                 + 0.5 * self.lambda_j * ordered_dot(couplings_flat, couplings_flat))

        logit_gradient = log_probabilities.exp_()                           # softmax
        logit_gradient.scatter_add_(2, self.targets,
                                    torch.full_like(observed, -1.0))       # − one-hot
        logit_gradient.mul_(self.scaled_weights)
        torch.add(logit_gradient.sum(dim=0), fields, alpha=2.0 * self.lambda_h,
                  out=gradient[:self.n_fields].view(self.length, self.n_states))
        coupling_gradient = gradient[self.n_fields:].view(self.n_fields, self.n_fields)
        sequence_gradient = logit_gradient.view(n_sequences, self.n_fields)
        if self.one_hot is None:
            summed_rows(self.picking_sequences, sequence_gradient, self.pick_offsets,
                        out=coupling_gradient)
        else:
            with ieee_float32_products():
                torch.mm(self.one_hot.T, sequence_gradient, out=coupling_gradient)
        # The objective sees E through its symmetric part: symmetrise, then add λ_J E.
        add_transpose_in_place(coupling_gradient, self.tile)
        coupling_gradient.mul_(0.5).add_(couplings, alpha=self.lambda_j)
        blocks = coupling_gradient.view(self.length, self.n_states, self.length, self.n_states)
        blocks[self.sites, :, self.sites, :] = 0.0
        return value

    def free_buffers(self) -> None:
        """Drop the (N, L·q) buffers (made again by the next evaluation)."""
        self.logits = self.log_probabilities = self.one_hot = None


@contextlib.contextmanager
def ieee_float32_products():
    """CUDA float32 matrix products in full precision inside, whatever the process chose: with
    TF32 (10-bit mantissas) the gradient would be ~1e-3 off the objective's value, enough to
    stall L-BFGS's line search. The setting is put back afterwards."""
    allowed = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allowed


def add_transpose_in_place(matrix: torch.Tensor, tile: int) -> None:
    """matrix ← matrix + matrixᵀ for a square matrix, one (tile, tile) block pair at a time:
    no second matrix-sized array (one fewer coupling-sized array at PLM's peak). Each entry
    is the same single addition as ``matrix + matrix.T``, so the result is bitwise equal."""
    size = matrix.shape[0]
    for start in range(0, size, tile):
        rows = slice(start, start + tile)
        for other in range(start, size, tile):
            columns = slice(other, other + tile)
            upper = matrix[rows, columns]
            total = matrix[columns, rows].T + upper
            upper.copy_(total)
            if other != start:
                matrix[columns, rows].copy_(total.T)


def _norm(vector: torch.Tensor) -> float:
    return math.sqrt(ordered_dot(vector, vector))


def initial_fields(indices: torch.Tensor, weights: torch.Tensor, n_states: int) -> torch.Tensor:
    """Fields of the independent-site model: log of weighted frequencies with a pseudocount,
    centred per site. A good start shortens L-BFGS by many iterations."""
    length = indices.shape[1]
    counts = torch.zeros(length, n_states, dtype=torch.float32, device=indices.device)
    counts.scatter_add_(1, indices.long().T, weights.to(torch.float32).expand(length, -1))
    total = ordered_sum(weights) + PSEUDOCOUNT_FOR_FIELDS
    frequencies = (counts + PSEUDOCOUNT_FOR_FIELDS / n_states) / total
    fields = frequencies.log()
    return fields - fields.mean(dim=1, keepdim=True)


def fit_plm(indices: np.ndarray | torch.Tensor, weights: np.ndarray | torch.Tensor,
            n_states: int, settings: PlmSettings | None = None,
            device: torch.device | str = "cpu",
            on_iteration: ProgressCallback | None = None) -> PlmResult:
    """Fit h (L, q) and J (L, L, q, q) to encoded sequences ``indices`` (N, L) with weights (N,)
    (numpy or torch; checked by :mod:`.inputs`), on ``device``: a ``torch.device`` or
    ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` as for ``fit --device`` (``auto`` says on
    stderr when it falls back to the CPU).

    Stops after ``max_iterations`` L-BFGS iterations, or (converged, as CCMpred) when the
    objective fell by less than the fraction ``tolerance`` over the last 5 iterations, or
    (converged at float32 precision) when no step along the gradient lowers it.
    ``on_iteration(iteration, objective, gradient_norm)`` is called after every iteration;
    the objective is in nats per site and effective sequence.
    """
    settings = settings or PlmSettings()
    if not isinstance(settings, PlmSettings):
        raise TypeError(f"settings must be a PlmSettings, got {type(settings).__name__} "
                        "(e.g. PlmSettings(max_iterations=50))")
    start = time.perf_counter()
    device = resolve_device(device) if isinstance(device, str) else device
    n_states = integer("n_states", n_states, least=1)
    states = encoded_sequences(indices, n_states, device)
    weights = sequence_weight_vector(weights, states.shape[0], device)
    length = states.shape[1]
    objective = _PlmObjective(states, weights, n_states, settings)
    n_fields = length * n_states

    def evaluate(flat: torch.Tensor, gradient: torch.Tensor) -> float:
        value = objective.value_and_gradient(flat, gradient)
        if not math.isfinite(value):
            raise NumericalError(f"PLM objective became {value}; try larger penalties "
                                 "(lambda_h, lambda_j; --lambda-h, --lambda-j)")
        return value

    start_point = torch.zeros(n_fields + n_fields ** 2, device=device)
    start_point[:n_fields] = initial_fields(states, weights, n_states).reshape(-1)
    state = lbfgs_init(evaluate, start_point)
    values = [state.value]
    converged = False
    while state.iteration < settings.max_iterations:
        lbfgs_step(evaluate, state, settings.history_size)
        values.append(state.value)
        if on_iteration is not None:
            on_iteration(state.iteration, state.value, _norm(state.gradient))
        window = values[-1 - CONVERGENCE_WINDOW:]
        if state.stalled or len(values) > CONVERGENCE_WINDOW and \
                (window[0] - window[-1]) <= settings.tolerance * abs(window[0]):
            converged = True
            break
    # Free the history and the objective's buffers before the (L, L, q, q) copy below.
    clear_history(state)
    objective.free_buffers()
    fields = state.x[:n_fields].view(length, n_states)
    coupling_blocks = state.x[n_fields:].view(length, n_states, length, n_states)
    J = coupling_blocks.permute(0, 2, 1, 3).contiguous()
    value, gradient_norm = state.value, _norm(state.gradient)
    return PlmResult(h=fields.cpu().numpy().astype(np.float32),
                     J=J.cpu().numpy().astype(np.float32, copy=False), objective=value,
                     gradient_norm=gradient_norm, iterations=state.iteration,
                     evaluations=state.evaluations, converged=converged,
                     seconds=time.perf_counter() - start)
