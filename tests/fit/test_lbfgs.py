"""The L-BFGS minimiser on problems with known minima."""

from __future__ import annotations

import torch

from potts_gwg.fit.lbfgs import MAX_BACKTRACKS, lbfgs_init, lbfgs_step


def test_minimises_an_ill_conditioned_quadratic_to_its_known_minimum():
    generator = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(30, 30, generator=generator, dtype=torch.float64))
    hessian = basis @ torch.diag(torch.logspace(0, 3, 30, dtype=torch.float64)) @ basis.T
    target = torch.randn(30, generator=generator, dtype=torch.float64)

    def evaluate(x, gradient):
        difference = x - target
        torch.mv(hessian, difference, out=gradient)
        return float(0.5 * difference @ gradient)

    state = lbfgs_init(evaluate, torch.zeros(30, dtype=torch.float64))
    for _ in range(300):  # scipy's L-BFGS-B (maxcor=10) needs ~300 iterations here too
        lbfgs_step(evaluate, state, history_size=10)
    assert torch.allclose(state.x, target, atol=1e-6)
    assert state.evaluations < 2 * state.iteration  # the line search rarely backtracks


def test_rosenbrock_reaches_the_minimum():
    def evaluate(x, gradient):
        x = x.detach().clone().requires_grad_(True)
        value = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        value.backward()
        gradient.copy_(x.grad)
        return float(value.detach())

    state = lbfgs_init(evaluate, torch.tensor([-1.2, 1.0], dtype=torch.float64))
    for _ in range(300):
        lbfgs_step(evaluate, state, history_size=5)
    assert torch.allclose(state.x, torch.ones(2, dtype=torch.float64), atol=1e-5)


def test_a_line_search_that_finds_no_decrease_retries_without_history_then_stalls():
    """From the fifth evaluation on, the gradient has the wrong sign (it points uphill): the
    next iteration's L-BFGS direction fails, the history is dropped, steepest descent fails
    too, and the state is left where it was, marked stalled, after 2 × MAX_BACKTRACKS
    evaluations."""
    calls = {"count": 0}
    seen = []  # the buffers stay bounded on these paths too (see the test below)

    def evaluate(x, gradient):
        seen.extend((x, gradient))
        calls["count"] += 1
        sign = 1.0 if calls["count"] <= 4 else -1.0   # lbfgs_init + three iterations
        torch.mul(4 * x ** 3 + 2 * x, sign, out=gradient)
        return float((x ** 4 + x ** 2).sum())

    state = lbfgs_init(evaluate, torch.tensor([3.0, -2.0, 0.5], dtype=torch.float64))
    for _ in range(4):
        lbfgs_step(evaluate, state, history_size=5)
    assert not state.stalled and state.steps and calls["count"] == 5
    evaluations_before = state.evaluations
    x_before, value_before = state.x.clone(), state.value
    lbfgs_step(evaluate, state, history_size=5)
    assert state.stalled and not state.steps
    assert torch.equal(state.x, x_before) and state.value == value_before
    assert state.evaluations == evaluations_before + 2 * MAX_BACKTRACKS
    assert len({tensor.data_ptr() for tensor in seen}) <= 2 * 5 + 5


def test_iterations_reuse_a_bounded_set_of_buffers():
    """Every point and gradient the objective sees is one of at most 2 m + 5 buffers (the point,
    its gradient, m curvature pairs, the direction, the trial point and its gradient), however
    many iterations run. Holding a reference to each keeps addresses from being recycled."""
    target = torch.linspace(-1.0, 1.0, 50, dtype=torch.float64)
    scales = torch.logspace(0, 2, 50, dtype=torch.float64)
    seen = []

    def evaluate(x, gradient):
        seen.extend((x, gradient))
        torch.mul(scales, x - target, out=gradient)
        return float(0.5 * ((x - target) * gradient).sum())

    state = lbfgs_init(evaluate, torch.zeros(50, dtype=torch.float64))
    for _ in range(40):
        lbfgs_step(evaluate, state, history_size=3)
    assert state.evaluations > 30
    assert len({tensor.data_ptr() for tensor in seen}) <= 2 * 3 + 5
