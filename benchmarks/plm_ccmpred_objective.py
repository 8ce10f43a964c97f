"""Do CCMpred's two remaining objective differences explain its one-contact lead over PLM?

With the score convention ruled out (``score_conventions.py``), two differences remain between
potts-gwg's PLM objective and CCMpred's (``src/evaluate_cpu.c``, ``src/reweighting.c`` of
soedinglab/CCMpred):

- ``gap_field_fixed``: CCMpred fixes h[i, gap] = 0, so only the 20 amino-acid fields are free
  and penalised; potts-gwg fits and penalises all q fields (../shared/docs: "L2 on h and J").
  Reproduced here by zeroing that part of the gradient and starting from fields relative to
  the gap's (the rest of ``fit_plm`` unchanged).
- ``ccmpred_neighbours``: CCMpred counts m as a neighbour of n when the identical columns
  (gaps included) number more than ceil(0.8 L); the docs say identity >= 0.8, i.e. at least
  ceil(0.8 L). Reproduced with ``--theta (ceil(0.8 L) + 0.5) / L``.

And the optimiser, the difference left once both details were ruled out:

- ``conjugate_gradients``: CCMpred's minimiser (``lib/libconjugrad/src/conjugrad.c`` and the
  settings of ``src/ccmpred.c``, v0.3.2) in place of L-BFGS, on potts-gwg's objective and start:
  Fletcher-Reeves directions, first step 1/‖g‖, later first trials α_prev·(s·g)_prev/(s·g),
  at most 5 halvings until f ≤ f0 + 10⁻⁴ α s·g0 and s·g < 0.2 s·g0, stop when f fell by less
  than 1 % over 5 iterations (``--tolerance 0.01``) or after 250 iterations.

Each variant fits the 9 dev families with ``potts-gwg fit`` defaults otherwise (seed 0, one
thread: the model is the same on any thread count), ``--jobs`` fits at a time, each in its own
process; the models are scored as ``contacts`` scores them.

    python benchmarks/plm_ccmpred_objective.py --work DIR -o RESULT.json [--jobs 2]
        [--families A,B] [--variants default,gap_field_fixed,ccmpred_neighbours]

Models already in DIR/VARIANT/ are scored, not fitted again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from common import (
    RESULTS,
    git_commit,
    machine_description,
    positive_int,
    select_families,
    write_json,
)

from potts_gwg.cli.main import main as potts_gwg_main
from potts_gwg.contacts import contact_scores
from potts_gwg.evaluation import precision_table
from potts_gwg.fit import plm
from potts_gwg.io.model_file import load_model
from potts_gwg.io.structure import query_distances
from potts_gwg.ordered_sums import ordered_dot

VARIANTS = ("default", "gap_field_fixed", "ccmpred_neighbours", "conjugate_gradients")
# CCMpred v0.3.2's conjugrad settings (src/ccmpred.c): -e 0.01 over k = 5, -n 250.
CG_TOLERANCE, CG_MAX_ITERATIONS = 0.01, 250
CG_MAX_LINESEARCH, CG_ALPHA_MUL, CG_FTOL, CG_WOLFE = 5, 0.5, 1e-4, 0.2
FIT_IN_CHILD = "--fit-in-child"


@contextlib.contextmanager
def gap_field_fixed():
    """``fit_plm`` with h[:, gap] held at 0 (the alphabet's last letter), as CCMpred holds it."""
    full_gradient = plm._PlmObjective.value_and_gradient

    def value_and_gradient(objective, flat, gradient):
        value = full_gradient(objective, flat, gradient)
        gradient[:objective.n_fields].view(objective.length, objective.n_states)[:, -1] = 0.0
        return value

    def fields_relative_to_gap(indices, weights, n_states):
        fields = plm_initial_fields(indices, weights, n_states)
        return fields - fields[:, -1:]  # the same model, with h[:, gap] = 0

    plm_initial_fields = plm.initial_fields
    with mock.patch.object(plm._PlmObjective, "value_and_gradient", value_and_gradient), \
            mock.patch.object(plm, "initial_fields", fields_relative_to_gap):
        yield


@dataclass
class ConjugateGradientState:
    """What ``fit_plm`` reads of an optimiser state, plus conjugrad's own variables."""

    x: torch.Tensor
    value: float
    gradient: torch.Tensor
    gradient_norm2: float           # ‖g‖² (conjugrad's "gnorm")
    alpha: float                    # the last accepted step (or the first trial)
    direction: torch.Tensor | None = None
    slope: float = 0.0              # s·g at the start of the last line search ("dgprev")
    previous_norm2: float = 0.0     # ‖g‖² before the last step ("gprevnorm")
    iteration: int = 0
    evaluations: int = 1
    stalled: bool = False


def cg_init(evaluate, x0: torch.Tensor) -> ConjugateGradientState:
    gradient = torch.empty_like(x0)
    value = evaluate(x0, gradient)
    norm2 = ordered_dot(gradient, gradient)
    return ConjugateGradientState(x0, value, gradient, norm2, 1.0 / math.sqrt(norm2))


def cg_step(evaluate, state: ConjugateGradientState, history_size: int
            ) -> ConjugateGradientState:
    """One conjugrad iteration (``history_size`` is L-BFGS's, unused)."""
    state.iteration += 1
    if state.direction is None:
        state.direction = torch.neg(state.gradient)
        slope = -state.gradient_norm2
        alpha = state.alpha
    else:
        beta = state.gradient_norm2 / state.previous_norm2
        state.direction.mul_(beta).sub_(state.gradient)
        slope = ordered_dot(state.direction, state.gradient)
        alpha = state.alpha * state.slope / slope
    trial, trial_gradient = torch.empty_like(state.x), torch.empty_like(state.x)
    for _ in range(CG_MAX_LINESEARCH):
        torch.add(state.x, state.direction, alpha=alpha, out=trial)
        value = evaluate(trial, trial_gradient)
        state.evaluations += 1
        if value <= state.value + alpha * CG_FTOL * slope and \
                ordered_dot(state.direction, trial_gradient) < CG_WOLFE * slope:
            break
        alpha *= CG_ALPHA_MUL
    else:  # conjugrad stops with an error here (CONJUGRADERR_MAXIMUMLINESEARCH)
        state.stalled = True
        return state
    state.previous_norm2 = state.gradient_norm2
    state.x, state.gradient, state.value = trial, trial_gradient, value
    state.gradient_norm2 = ordered_dot(trial_gradient, trial_gradient)
    state.alpha, state.slope = alpha, slope
    return state


@contextlib.contextmanager
def conjugate_gradients():
    """``fit_plm`` minimising with CCMpred's conjugate gradients instead of L-BFGS."""
    with mock.patch.object(plm, "lbfgs_init", cg_init), \
            mock.patch.object(plm, "lbfgs_step", cg_step), \
            mock.patch.object(plm, "clear_history", lambda state: None):
        yield


def fit_command(variant: str, family, model: Path, theta: float | None) -> list[str]:
    """The child process that fits ``family`` under ``variant``: ``potts-gwg fit`` run by
    this script (which patches the objective first for ``gap_field_fixed``)."""
    return [sys.executable, str(Path(__file__).resolve()), FIT_IN_CHILD, variant, "fit",
            str(family.msa), "-o", str(model), "--method", "plm", "--device", "cpu", "--seed",
            "0", "-q", "--threads", "1", *family.query_arguments,
            *(["--theta", repr(theta)] if theta is not None else []),
            *(["--tolerance", repr(CG_TOLERANCE), "--max-iterations", str(CG_MAX_ITERATIONS)]
              if variant == "conjugate_gradients" else [])]


def fit_in_this_process(variant: str, arguments: list[str]) -> None:
    """The child's side: run ``potts-gwg ARGUMENTS`` under ``variant``'s objective."""
    patches = {"gap_field_fixed": gap_field_fixed, "conjugate_gradients": conjugate_gradients}
    with patches.get(variant, contextlib.nullcontext)():
        potts_gwg_main(args=arguments, prog_name="potts-gwg")


def ccmpred_theta(length: int) -> float:
    """The --theta at which "identity >= theta" means CCMpred's ids > ceil(0.8 L)."""
    return (math.ceil(0.8 * length) + 0.5) / length


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True,
                        help="folder for the models (WORK/VARIANT/FAMILY.npz)")
    parser.add_argument("--families", help="comma-separated ids (default: all 9)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--jobs", type=positive_int, default=2, help="fits at a time")
    parser.add_argument("-o", "--output", type=Path,
                        default=RESULTS / "plm_ccmpred_objective_cpu.json")
    arguments = parser.parse_args()
    variants = arguments.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        raise SystemExit(f"unknown variant(s): {', '.join(sorted(unknown))}")
    families = select_families(arguments.families)
    # CCMpred's threshold needs L: the query length, which msa-info reports.
    lengths = {family.id: query_length(family) for family in families}
    commands = {}
    for variant in variants:
        for family in families:
            model = arguments.work / variant / f"{family.id}.npz"
            theta = ccmpred_theta(lengths[family.id]) if variant == "ccmpred_neighbours" \
                else None
            commands[variant, family.id] = (model, fit_command(variant, family, model, theta))
    to_fit = [(variant, family_id, model, command)
              for (variant, family_id), (model, command) in commands.items() if not model.exists()]
    with ThreadPoolExecutor(arguments.jobs) as pool:
        for variant, family_id, error in pool.map(lambda job: run_fit(*job), to_fit):
            if error:
                raise SystemExit(f"{variant} {family_id}: the fit failed: {error}")
    records = []
    for family in families:
        record = {"family": family.id, "L": lengths[family.id]}
        distances = None
        for variant in variants:
            model_path, command = commands[variant, family.id]
            model = load_model(model_path)
            if distances is None:
                distances, _, _ = query_distances(model.meta["query_sequence"],
                                                  str(family.structure), family.chain)
            table = precision_table(contact_scores(model.J, model.alphabet), distances)
            record[variant] = {
                "fit_command": " ".join(command),
                **{key: model.meta[key] for key in ("n_effective", "iterations", "objective")},
                "max_abs_gap_field": float(np.abs(model.h[:, -1]).max()),
                **{f"P@{row['top']}_sep{row['min_separation']}": row["precision"]
                   for row in table}}
        records.append(record)
        print(family.id, {variant: round(record[variant]["P@L_sep6"], 4) for variant in variants},
              flush=True)
    means = {variant: {key: float(np.mean([record[variant][key] for record in records]))
                       for key in ("P@L_sep6", "P@L/5_sep6")} for variant in variants}
    print("means (|i-j| >= 6):", means)
    write_json(arguments.output, {
        "benchmark": "plm_ccmpred_objective", "command": " ".join(sys.argv),
        "git_commit": git_commit(), "machine": machine_description(), "means": means,
        "records": records})


def query_length(family) -> int:
    result = subprocess.run(["potts-gwg", "msa-info", str(family.msa), "--json", "--threads", "1",
                             *family.query_arguments], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)["length"]


def run_fit(variant: str, family_id: str, model: Path, command: list[str]):
    model.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    print(f"{variant} {family_id}: {result.stdout.strip()}", flush=True)
    return variant, family_id, result.stderr.strip() if result.returncode else None


if __name__ == "__main__":
    if sys.argv[1:2] == [FIT_IN_CHILD]:  # run_fit's child: one fit
        fit_in_this_process(sys.argv[2], sys.argv[3:])
    else:
        main()
