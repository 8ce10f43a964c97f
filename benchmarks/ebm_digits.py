"""Benchmark: deep EBM on the shipped 8×8 digits, GWG-PCD against Gibbs-PCD and an RBM.

Three models, each trained for the same CPU-time budget (one torch thread, so the budget is
the process's CPU seconds: on a machine shared with other jobs that stands for the wall time
of a dedicated core, which a wall clock would not measure), then scored on the 300 test
digits by AIS (GWG transitions, sigmoid schedule) with the EMA parameters:

  (a) MLP energy + base, trained with GWG-PCD,
  (b) the same MLP, same settings, trained with random-scan Gibbs-PCD,
  (c) an RBM, trained with GWG-PCD,
  (d) the MLP of (b) trained for as many updates as (a) got (not the same time): whether
      GWG's chains give better updates, apart from what a step costs.

The paper's ordering on static MNIST is GWG EBM (−80.0 nats) > RBM (−86.4) > Gibbs EBM
(−117.2). Wall seconds, updates, settings and seeds are recorded; with --png-dir, a grid of
samples from each model is drawn too.

    python benchmarks/ebm_digits.py                       # ~10 min on one free core
    python benchmarks/ebm_digits.py --budget 20 --temperatures 300   # a quick look
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, git_commit, machine_description

from potts_gwg.atomic import atomic_open
from potts_gwg.ebm.ais import annealed_importance_sampling
from potts_gwg.ebm.data import DIGITS_PATH, load_digits
from potts_gwg.ebm.images import image_grid_png
from potts_gwg.ebm.networks import EnergySpec, IndependentSites, build_energy
from potts_gwg.ebm.trainer import PCDTrainer, TrainConfig, make_sampler
from potts_gwg.engine import run_chains

EQUAL_UPDATES = "EBM (MLP), Gibbs-PCD, as many updates as GWG-PCD"


def configurations(args) -> list[tuple[str, EnergySpec, TrainConfig]]:
    common = {"steps": args.steps, "batch_size": 100, "buffer_size": 1000,
              "reinit_rate": 0.0, "ema_decay": 0.99, "seed": args.seed}
    mlp = EnergySpec(energy="mlp", n_sites=64, n_states=2, hidden=args.hidden, depth=2,
                     image_shape=(8, 8))
    rbm = EnergySpec(energy="rbm", n_sites=64, n_states=2, hidden=args.rbm_hidden,
                     image_shape=(8, 8))
    return [
        ("EBM (MLP), GWG-PCD", mlp, TrainConfig(sampler="gwg", learning_rate=args.lr, **common)),
        ("EBM (MLP), Gibbs-PCD", mlp, TrainConfig(sampler="gibbs", learning_rate=args.lr,
                                                  **common)),
        ("RBM, GWG-PCD", rbm, TrainConfig(sampler="gwg", learning_rate=args.rbm_lr, **common)),
        (EQUAL_UPDATES, mlp, TrainConfig(sampler="gibbs", learning_rate=args.lr, **common)),
    ]


def train_for(trainer: PCDTrainer, budget: float, updates: int | None) -> dict:
    """Update until ``budget`` CPU seconds of this process have been spent, or for exactly
    ``updates`` updates when that is given."""
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    while (trainer.iteration < updates if updates is not None
           else time.process_time() - cpu_start < budget):
        trainer.update()
    return {"updates": trainer.iteration, "cpu_seconds": time.process_time() - cpu_start,
            "wall_seconds": time.perf_counter() - wall_start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=120.0,
                        help="CPU seconds of training per model")
    parser.add_argument("--steps", type=int, default=40, help="sampler steps per update")
    parser.add_argument("--hidden", type=int, default=256, help="MLP hidden units")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam step size, MLP")
    parser.add_argument("--rbm-hidden", type=int, default=64)
    parser.add_argument("--rbm-lr", type=float, default=1e-2, help="Adam step size, RBM")
    parser.add_argument("--temperatures", type=int, default=5000)
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--png-dir", type=Path, help="write a 64-sample grid per model here")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS / "ebm_digits_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    digits = load_digits()
    train, test = torch.from_numpy(digits.train), torch.from_numpy(digits.test)
    base = IndependentSites.from_data(train, 2)
    with torch.no_grad():
        base_nats = {"test": float(base.log_prob_indices(test).double().mean()),
                     "train": float(base.log_prob_indices(train).double().mean())}
    print(f"base (independent pixels): test {base_nats['test']:.2f} nats", flush=True)
    runs = []
    for name, spec, config in configurations(args):
        trainer = PCDTrainer(build_energy(spec, base, config.seed), train, base, config)
        timing = train_for(trainer, args.budget,
                           runs[0]["updates"] if name == EQUAL_UPDATES else None)
        model = trainer.ema_model()
        result = annealed_importance_sampling(
            model, base, args.temperatures, args.chains,
            generator=torch.Generator().manual_seed(args.seed + 1), progress=False)
        scores = {split: result.log_likelihood(model, rows)
                  for split, rows in (("test", test), ("train", train))}
        run = {"name": name, "energy": spec.to_json(), "training": config.to_json(), **timing,
               "parameters": sum(p.numel() for p in model.parameters()),
               "log_z": result.log_z, "log_z_standard_error": result.standard_error,
               "ais_effective_chains": result.effective_chains,
               "ais_seconds": result.seconds,
               "test_log_likelihood_nats": scores["test"]["log_likelihood_nats"],
               "test_bits_per_dim": scores["test"]["bits_per_dim"],
               "train_log_likelihood_nats": scores["train"]["log_likelihood_nats"]}
        runs.append(run)
        print(f"{name}: {timing['updates']} updates in {timing['cpu_seconds']:.0f} CPU s "
              f"({timing['wall_seconds']:.0f} wall s); test {run['test_log_likelihood_nats']:.2f}"
              f" ± {result.standard_error:.2f} nats (train "
              f"{run['train_log_likelihood_nats']:.2f})", flush=True)
        if args.png_dir is not None:
            generator = torch.Generator().manual_seed(args.seed + 2)
            samples, _ = run_chains(make_sampler("gwg"), model, base.sample(64, generator), 1,
                                    burn_in=999, generator=generator, progress=False)
            slug = f"{spec.energy}_{config.sampler}" + ("_equal_updates"
                                                       if name == EQUAL_UPDATES else "")
            image_grid_png(args.png_dir / f"ebm_digits_{slug}.png", samples[0].numpy(),
                           (8, 8), 2, title=name)

    record = {"benchmark": "ebm_digits", "command": " ".join(sys.argv),
              "git_commit": git_commit(), "machine": machine_description(),
              "threads": args.threads, "data": str(DIGITS_PATH.relative_to(RESULTS.parents[1])),
              "n_train": len(train), "n_test": len(test),
              "budget_cpu_seconds_per_model": args.budget,
              "ais": {"temperatures": args.temperatures, "chains": args.chains,
                      "schedule": "sigmoid", "steps_per_temperature": 1,
                      "seed": args.seed + 1, "parameters": "EMA"},
              "base_log_likelihood_nats": base_nats, "runs": runs}
    with atomic_open(args.output) as stream:
        json.dump(record, stream, indent=2)
        stream.write("\n")
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
