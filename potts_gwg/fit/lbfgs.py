"""A lean L-BFGS over one flat parameter vector, with a backtracking (Armijo) line search.

Why not ``torch.optim.LBFGS``: it cannot stop on a criterion over past iterations without an
extra objective evaluation per ``step`` call, it keeps several more parameter-sized copies,
and its state is not ours to checkpoint. Every dot product is an ``ordered_dot``: the iterates
are the same on any number of CPU threads; s·y and the initial scale are kept with each pair
(2m + 4 dot products per iteration instead of 3m + 6). The PLM objective is convex and smooth, so a
backtracking line search from t = 1 accepts the first trial almost always: about one
evaluation per iteration.

Parameter-sized buffers are reused (``LbfgsState.spare``): after the first iterations no
iteration allocates one. A fresh array of PLM's size (44 MB at L = 158, 370 MB at L = 458) is
new pages from the system on CPU, and their page faults were a third of a PLM fit's time.
So the state owns its tensors: ``lbfgs_init`` takes over ``x0``, and ``x``, ``gradient`` and
the history are overwritten in place by later steps; copy what must outlive a step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..ordered_sums import ordered_dot, ordered_sum

ARMIJO_C1 = 1e-4
BACKTRACK_FACTOR = 0.5
MAX_BACKTRACKS = 20
CURVATURE_EPSILON = 1e-8  # keep a history pair only if s·y > ε |s| |y| (positive curvature)

# evaluate(x, gradient) -> objective value; writes the gradient at x into ``gradient`` (a
# tensor shaped like x), does not modify x and keeps neither (both are reused buffers).
Evaluate = Callable[[torch.Tensor, torch.Tensor], float]


@dataclass
class LbfgsState:
    """Everything needed to continue: the point, its value and gradient, and the history."""

    x: torch.Tensor
    value: float
    gradient: torch.Tensor
    steps: list[torch.Tensor] = field(default_factory=list)        # s_k = x_{k+1} − x_k
    gradient_changes: list[torch.Tensor] = field(default_factory=list)  # y_k = g_{k+1} − g_k
    curvatures: list[float] = field(default_factory=list)       # s_k · y_k, kept with the pair
    initial_scale: float = 1.0  # H_0 = (s·y / y·y) I of the newest pair
    iteration: int = 0
    evaluations: int = 1
    stalled: bool = False  # no step along −g lowered the objective: float32 precision reached
    spare: list[torch.Tensor] = field(default_factory=list)  # free buffers shaped like x


def lbfgs_init(evaluate: Evaluate, x0: torch.Tensor) -> LbfgsState:
    """The state at ``x0``, which it takes over (the first step overwrites it)."""
    gradient = torch.empty_like(x0)
    value = evaluate(x0, gradient)
    return LbfgsState(x=x0, value=value, gradient=gradient)


def _buffer(state: LbfgsState) -> torch.Tensor:
    """A free buffer shaped like x (contents undefined): a spare one, or a new one."""
    return state.spare.pop() if state.spare else torch.empty_like(state.x)


def _direction(state: LbfgsState) -> torch.Tensor:
    """−H g by the two-loop recursion, H_0 = (s·y / y·y) I from the newest pair."""
    direction = torch.neg(state.gradient, out=_buffer(state))
    pairs = list(zip(state.steps, state.gradient_changes, state.curvatures))
    alphas = []
    for step, change, curvature in reversed(pairs):
        rho = 1.0 / curvature
        alpha = rho * ordered_dot(step, direction)
        direction.add_(change, alpha=-alpha)
        alphas.append((rho, alpha))
    if pairs:
        direction.mul_(state.initial_scale)
    for (step, change, _), (rho, alpha) in zip(pairs, reversed(alphas)):
        beta = rho * ordered_dot(change, direction)
        direction.add_(step, alpha=alpha - beta)
    return direction


def lbfgs_step(evaluate: Evaluate, state: LbfgsState, history_size: int) -> LbfgsState:
    """One iteration: direction, backtracking line search, history update (in place).

    When the L-BFGS direction gives no decrease, the history is dropped and steepest descent
    tried; when that fails too, or at a stationary point, the state is left as it is with
    ``stalled`` set (only the iteration count moves): the caller should stop.
    """
    state.iteration += 1
    if not torch.any(state.gradient):
        state.stalled = True
        return state
    accepted = _line_search(evaluate, state)
    if accepted is None and state.steps:
        _drop_history(state)
        accepted = _line_search(evaluate, state)
    if accepted is None:
        state.stalled = True
        return state
    candidate, value, gradient = accepted
    # s and y overwrite the old point and gradient, which are not needed any more
    step = torch.sub(candidate, state.x, out=state.x)
    change = torch.sub(gradient, state.gradient, out=state.gradient)
    curvature = ordered_dot(step, change)
    change_squared = ordered_dot(change, change)
    if curvature > CURVATURE_EPSILON * math.sqrt(ordered_dot(step, step) * change_squared):
        state.steps.append(step)
        state.gradient_changes.append(change)
        state.curvatures.append(curvature)
        state.initial_scale = curvature / change_squared
        if len(state.steps) > history_size:
            state.spare += [state.steps.pop(0), state.gradient_changes.pop(0)]
            state.curvatures.pop(0)
    else:
        state.spare += [step, change]
    state.x, state.value, state.gradient = candidate, value, gradient
    return state


def _line_search(evaluate: Evaluate, state: LbfgsState
                 ) -> tuple[torch.Tensor, float, torch.Tensor] | None:
    """Backtracking (Armijo) search along the L-BFGS direction (steepest descent without
    history); the accepted (point, value, gradient), or None if no trial lowered the value."""
    direction = _direction(state)
    slope = ordered_dot(state.gradient, direction)
    if slope >= 0:  # not a descent direction (numerical trouble): restart from steepest descent
        _drop_history(state)
        torch.neg(state.gradient, out=direction)
        slope = -ordered_dot(state.gradient, state.gradient)
    candidate, gradient = _buffer(state), _buffer(state)
    # Without history, a first step of length 1 / Σ|g| (|g| in the candidate's buffer)
    step_length = 1.0 if state.steps else min(
        1.0, 1.0 / ordered_sum(torch.abs(state.gradient, out=candidate)))
    for _ in range(MAX_BACKTRACKS):
        torch.add(state.x, direction, alpha=step_length, out=candidate)
        value = evaluate(candidate, gradient)
        state.evaluations += 1
        if value <= state.value + ARMIJO_C1 * step_length * slope:
            state.spare.append(direction)
            return candidate, value, gradient
        step_length *= BACKTRACK_FACTOR
    state.spare += [direction, candidate, gradient]
    return None


def _drop_history(state: LbfgsState) -> None:
    """Forget the curvature pairs; their buffers become spare."""
    state.spare += state.steps + state.gradient_changes
    state.steps.clear()
    state.gradient_changes.clear()
    state.curvatures.clear()


def clear_history(state: LbfgsState) -> None:
    """Forget the curvature pairs and free their and the spare buffers (2 × history_size
    and more parameter-sized tensors), e.g. before the caller needs the memory."""
    _drop_history(state)
    state.spare.clear()
