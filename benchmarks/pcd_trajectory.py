"""Benchmark: contact precision along a PCD fit (issue 5: does maximum likelihood overtake PLM
if it runs longer?).

Per family: the PLM fit with its defaults (the start, as `fit --init plm`), then GWG- or
Gibbs-PCD from it, scored against the structure every ``--every`` updates (top-L, L/2, L/5 at
|i−j| ≥ 6, 12, 24; Pearson C of the chains). With ``--average-from K`` the record also scores
the uniform average of the couplings at every ``--average-step`` updates from update K on
(Polyak averaging: does the noise of the stochastic gradient cost precision?). The fit is the
library's `fit_pcd`, continued from its own state, so the trajectory is the one of a single
uninterrupted run with the same seed.

    python benchmarks/pcd_trajectory.py --families 16pkA --updates 300 --every 50 \
        -o benchmarks/results/pcd_trajectory_cpu.json [--lambda-group 0.01] [--average-from 10] \
        [--steps K]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (RESULTS, git_commit, int_at_least, machine_description, positive_int,
                    select_families)
from plm_contacts import family_base, precision_summary

from potts_gwg.alphabet import PROTEIN_ALPHABET
from potts_gwg.atomic import atomic_open
from potts_gwg.contacts import contact_scores
from potts_gwg.evaluation import precision_table
from potts_gwg.fit.pcd import PcdSettings, default_steps, fit_pcd, initial_state
from potts_gwg.fit.plm import PlmSettings, fit_plm
from potts_gwg.io.structure import query_distances
from potts_gwg.weights import effective_number, sequence_weights


def trajectory(family, settings: PcdSettings, updates: int, every: int,
               average_from: int | None, average_step: int, seed: int,
               save: Callable[[dict], None]) -> None:
    """Fit and score one family; ``save(run)`` (the family's record so far) after every
    scored point, so a long run that is stopped keeps what it measured."""
    alignment, base = family_base(family)
    n_states = len(PROTEIN_ALPHABET)
    indices = torch.as_tensor(alignment.indices).long()
    weights = sequence_weights(alignment.indices, n_states)
    distances, _mapping, _residues = query_distances(alignment.query_sequence,
                                                     family.structure, family.chain)

    def precision(J: np.ndarray) -> dict:
        return precision_summary(precision_table(contact_scores(J, PROTEIN_ALPHABET),
                                                 distances))

    start = time.perf_counter()
    plm = fit_plm(indices, weights, n_states, PlmSettings())
    records = [{"update": 0, "pcd_seconds": 0.0, **precision(plm.J)}]
    run = {**base, "n_effective": round(effective_number(weights), 2),
           "plm_iterations": plm.iterations, "records": records}
    save(run)
    print(f"{family.id}: PLM {plm.iterations} iterations, {time.perf_counter() - start:.0f} s, "
          f"P@L {records[0]['P@L_sep6']:.3f}", flush=True)
    state = initial_state(torch.from_numpy(plm.h), torch.from_numpy(plm.J), indices, weights,
                          settings, seed)
    step = average_step if average_from is not None else every
    steps = settings.steps or default_steps(alignment.length)
    summed, averaged = None, 0
    while state.iteration < updates:
        target = min(updates, state.iteration + step)
        result = fit_pcd(indices, weights, n_states, state,
                         dataclasses.replace(settings, max_iterations=target))
        state = result.state
        if average_from is not None and result.iterations >= average_from:
            J = result.J.astype(np.float64)
            summed = J if summed is None else summed + J
            averaged += 1
        if result.iterations % every and result.iterations != updates:
            continue
        record = {"update": result.iterations, "sweeps": round(result.iterations * steps
                                                                / alignment.length, 2),
                  "pcd_seconds": round(result.seconds, 2),
                  "pearson_pairs": round(result.pearson_pairs, 4),
                  "pearson_sites": round(result.pearson_sites, 4),
                  "acceptance": round(result.acceptance, 4), **precision(result.J)}
        if averaged:
            record["averaged_snapshots"] = averaged
            record.update({f"averaged_{key}": value for key, value in
                           precision((summed / averaged).astype(np.float32)).items()})
        records.append(record)
        print(f"{family.id}: update {record['update']:5d} Pearson C {record['pearson_pairs']:.3f} "
              f"P@L {record['P@L_sep6']:.3f}" + (f" (averaged {record['averaged_P@L_sep6']:.3f})"
                                                 if averaged else "")
              + f"  {record['pcd_seconds']:.0f} s", flush=True)
        save(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", required=True, help="comma-separated ids")
    parser.add_argument("--updates", type=positive_int, default=300)
    parser.add_argument("--every", type=positive_int, default=50,
                        help="score every this many updates")
    parser.add_argument("--sampler", choices=("gwg", "gibbs"), default="gwg")
    parser.add_argument("--chains", type=int_at_least(2), default=PcdSettings.n_chains,
                        help="persistent chains (at least 2, as for `fit --chains`)")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="sampler steps per update (default: the fit's, L/10)")
    parser.add_argument("--lambda-j", type=float, default=PcdSettings.lambda_j)
    parser.add_argument("--lambda-group", type=float, default=PcdSettings.lambda_group)
    parser.add_argument("--learning-rate", type=float, default=PcdSettings.learning_rate)
    parser.add_argument("--average-from", type=positive_int, default=None,
                        help="also score the mean couplings from this update on")
    parser.add_argument("--average-step", type=positive_int, default=5,
                        help="updates between the snapshots that are averaged")
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=RESULTS / "pcd_trajectory.json")
    arguments = parser.parse_args()
    if arguments.average_from is not None and arguments.every % arguments.average_step:
        parser.error("--every must be a multiple of --average-step")
    torch.set_num_threads(arguments.threads)
    torch.manual_seed(arguments.seed)
    settings = PcdSettings(sampler=arguments.sampler, n_chains=arguments.chains,
                           steps=arguments.steps,
                           lambda_j=arguments.lambda_j, lambda_group=arguments.lambda_group,
                           learning_rate=arguments.learning_rate, target_pearson=None)
    record = {"benchmark": "pcd_trajectory", "command": " ".join(sys.argv),
              "git_commit": git_commit(), "machine": machine_description(),
              "threads": arguments.threads, "settings": settings.as_dict(),
              "average_from": arguments.average_from, "average_step": arguments.average_step,
              "runs": []}

    def save(run: dict) -> None:
        if not record["runs"] or record["runs"][-1] is not run:
            record["runs"].append(run)
        with atomic_open(arguments.output) as stream:
            json.dump(record, stream, indent=2)
            stream.write("\n")

    for family in select_families(arguments.families):
        trajectory(family, settings, arguments.updates, arguments.every, arguments.average_from,
                   arguments.average_step, arguments.seed, save)
    print(f"-> {arguments.output}")


if __name__ == "__main__":
    main()
