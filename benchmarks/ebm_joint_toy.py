"""Joint EBM on the toy problem of "No Conditional Models for Me": 8 Gaussian modes on a circle,
3 binary attributes (the bits of the mode index).

For each run (all labels; 10 % of the labels with y summed out exactly, eq. 8; optionally 10 %
with imputed labels) this trains the paper's MLP on [x, y] by PCD with the joint
GWG/Langevin sampler and measures on fresh test points:

* prediction accuracy of the 3 attributes, exact (argmax of p(y | x) by enumeration) and
  sample-based (per-site majority of 10 label-chain states after 200 steps), as in the paper
  (its target: > 99 % both ways);
* conditional samples x | y for each of the 8 label vectors: the fraction whose nearest mode
  is y's mode, for Langevin chains started from uniform noise and for annealed SMC;
* joint samples (MWG from noise): the fraction whose sampled y is the bits of x's nearest mode.

    python benchmarks/ebm_joint_toy.py --threads 1

Writes benchmarks/results/ebm_joint_toy_<device>.json (a list of records) and a PNG of the
samples per run next to it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, git_commit, machine_description

from potts_gwg.device import device_description, resolve_device
from potts_gwg.ebm.joint import (
    JointSampler,
    Langevin,
    MLPJointEnergy,
    anneal_data_given_labels,
    attribute_accuracy,
    labels_like,
    predict_by_sampling,
    predict_exact,
    run_joint_chains,
    uniform_data,
)
from potts_gwg.ebm.joint_toy import (
    circle_toy,
    labels_to_mode,
    mode_to_labels,
    nearest_mode,
    sample_panels,
    scatter_panels_png,
)
from potts_gwg.ebm.joint_train import JointTrainingConfig, config_record, train_joint

RUNS = {"supervised": (1.0, "marginal"), "semi_marginal": (0.1, "marginal"),
        "semi_sample": (0.1, "sample")}


def evaluate(model: MLPJointEnergy, x_test: torch.Tensor, y_test: torch.Tensor,
             low: torch.Tensor, high: torch.Tensor, langevin: Langevin,
             generator: torch.Generator, chains_per_mode: int, steps: int) -> dict:
    exact = predict_exact(model, x_test)
    start = time.perf_counter()
    sampled = predict_by_sampling(model, x_test, generator, n_samples=10, burn_in=200)
    sample_seconds = time.perf_counter() - start
    exact_site, exact_all = attribute_accuracy(exact, y_test)
    sample_site, sample_all = attribute_accuracy(sampled, y_test)

    modes = torch.arange(8).repeat_interleave(chains_per_mode)
    n = len(modes)
    conditional = run_joint_chains(JointSampler(langevin=langevin, update_labels=False), model,
                                   uniform_data(n, low, high, generator), mode_to_labels(modes),
                                   burn_in=steps, generator=generator)
    langevin_right = float((nearest_mode(conditional.x[-1]) == modes).float().mean())
    start = time.perf_counter()
    annealed_right, resamplings = [], []
    for mode in range(8):
        annealed = anneal_data_given_labels(model, mode_to_labels(torch.tensor([mode]))[0],
                                            chains_per_mode, (low + high) / 2,
                                            (high - low) / 4, generator, langevin)
        annealed_right.append(float((nearest_mode(annealed.x) == mode).float().mean()))
        resamplings.append(annealed.resamplings)
    smc_seconds = time.perf_counter() - start
    joint = run_joint_chains(JointSampler(langevin=langevin), model,
                             uniform_data(n, low, high, generator),
                             labels_like(None, n, 3, 2, generator), burn_in=steps,
                             generator=generator)
    joint_modes = nearest_mode(joint.x[-1])
    return {
        "accuracy_exact_per_attribute": exact_site, "accuracy_exact_all_three": exact_all,
        "accuracy_sampled_per_attribute": sample_site, "accuracy_sampled_all_three": sample_all,
        "accuracy_per_attribute_exact": attribute_columns(exact, y_test),
        "accuracy_per_attribute_sampled": attribute_columns(sampled, y_test),
        "sample_prediction_seconds": sample_seconds,
        "conditional_right_mode_langevin_from_noise": langevin_right,
        "conditional_right_mode_annealed_smc": sum(annealed_right) / 8,
        "conditional_right_mode_annealed_smc_per_mode": annealed_right,
        "smc_resamplings_per_mode": resamplings, "smc_seconds": smc_seconds,
        "conditional_chains": n, "conditional_steps": steps,
        "joint_samples_label_matches_mode": float(
            (labels_to_mode(joint.y[-1]) == joint_modes).float().mean()),
        "joint_samples_mode_counts": torch.bincount(joint_modes, minlength=8).tolist(),
        "joint_label_acceptance": joint.label_acceptance,
    }


def attribute_columns(predicted: torch.Tensor, labels: torch.Tensor) -> list[float]:
    return (predicted == labels).float().mean(0).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="supervised,semi_marginal",
                        help=f"comma-separated, of {', '.join(RUNS)}")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--hidden", default="128,128,128")
    parser.add_argument("--train-points", type=int, default=5000)
    parser.add_argument("--test-points", type=int, default=2000)
    parser.add_argument("--chains-per-mode", type=int, default=250)
    parser.add_argument("--sample-steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    # The data, model and generator stay on the CPU here (a CUDA run of the joint model is
    # tests/ebm/test_gpu.py): a "--device cuda" record would claim a GPU it never used.
    parser.add_argument("--device", choices=["cpu"], default="cpu",
                        help="cpu only (see tests/ebm/test_gpu.py for the joint model on CUDA)")
    parser.add_argument("--output", type=Path, default=None)
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    device = resolve_device(arguments.device)
    output = arguments.output or RESULTS / f"ebm_joint_toy_{device.type}.json"
    hidden = [int(width) for width in arguments.hidden.split(",")]
    records = []
    for name in arguments.runs.split(","):
        fraction, missing = RUNS[name]
        generator = torch.Generator().manual_seed(arguments.seed)
        x, y = circle_toy(arguments.train_points, generator)
        x_test, y_test = circle_toy(arguments.test_points, generator)
        labelled = torch.rand(len(x), generator=generator) < fraction
        config = JointTrainingConfig(iterations=arguments.iterations, batch_size=200,
                                     learning_rate=1e-3, warmup=100, sampler_steps=20,
                                     buffer_size=5000, reinit_rate=0.05, step_size=0.1,
                                     temperature=0.5, missing=missing, ema=0.99)
        torch.manual_seed(arguments.seed)
        model = MLPJointEnergy(2, 3, hidden=hidden)
        start = time.perf_counter()
        result = train_joint(model, x, y, labelled, config, generator,
                             log_every=max(1, arguments.iterations // 5),
                             callback=lambda record, name=name: print(name, record, flush=True))
        train_seconds = time.perf_counter() - start
        langevin = Langevin(config.step_size, config.temperature, config.adjusted)
        metrics = evaluate(result.ema, x_test, y_test, result.data_low, result.data_high,
                           langevin, generator, arguments.chains_per_mode,
                           arguments.sample_steps)
        picture = output.with_name(f"{output.stem}_{name}.png")
        panels = sample_panels(result.ema, 800, result.data_low, result.data_high, generator,
                               langevin, steps=arguments.sample_steps)
        scatter_panels_png(picture, [("data", x[:1000], labels_to_mode(y[:1000]) % 10)]
                           + panels)
        record = {
            "benchmark": "ebm_joint_toy", "run": name, "labelled_fraction": fraction,
            "labelled_rows": int(labelled.sum()), "missing": missing,
            "train_points": arguments.train_points, "test_points": arguments.test_points,
            "hidden": hidden, "training": config_record(config), "seed": arguments.seed,
            "train_seconds": train_seconds, "wall_seconds": time.perf_counter() - start,
            "history": result.history, "picture": picture.name, **metrics,
            "device": device_description(device), "machine": machine_description(),
            "command": shlex.join([sys.executable, *sys.argv]), "git_commit": git_commit(),
        }
        print(json.dumps({k: v for k, v in record.items() if k not in ("history", "machine",
                                                                       "training")}),
              flush=True)
        records.append(record)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
