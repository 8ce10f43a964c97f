"""``potts-gwg ebm``: train, sample and evaluate energy-based models on discrete data."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from potts_gwg.atomic import atomic_open, check_outputs, output_target
from potts_gwg.device import resolve_device
from potts_gwg.errors import InputError

from .main import LazyGroup
from .options import FiniteFloatRange, chosen_seed, device_option, seed_option, threads_option

# `ebm joint` (cli/ebm_joint.py), loaded when it runs, as the top-level commands are.
JOINT = {"joint": ("ebm_joint", "Joint energy-based models f(x, y) of continuous x and "
                                "discrete labels y.")}


@click.group(name="ebm", cls=LazyGroup, lazy_commands=JOINT)
def command() -> None:
    """Energy-based models on binary or categorical data: PCD training with GWG or Gibbs
    chains, sampling, and AIS evaluation.

    DATA is an .npz with a 'train' array (examples × sites, integers) and optionally 'test',
    'n_states' and 'image_shape' (see data/digits/SOURCE.md; data/digits/digits.npz is the
    shipped example).

    \b
    Example:
      potts-gwg ebm train data/digits/digits.npz --energy mlp --iterations 2000 -o digits.npz
      potts-gwg ebm sample digits.npz -n 64 --png samples.png
      potts-gwg ebm eval digits.npz --ais --data data/digits/digits.npz
    """


def _progress_option(function):
    return click.option("--progress/--no-progress", default=True, show_default=True,
                        help="Progress bar on stderr (only when it is a terminal).")(function)


@command.command(name="train")
@click.argument("data_path", metavar="DATA", type=click.Path(path_type=Path, readable=False))
@click.option("-o", "--output", type=click.Path(path_type=Path, readable=False), required=True,
              help="Model file (.npz) to write; it is also the checkpoint --resume reads.")
@click.option("--energy", type=click.Choice(["mlp", "resnet", "rbm"]), default="mlp",
              show_default=True, help="mlp / resnet: f = net(x) + log p_base(x); rbm: binary "
                                      "RBM with the hidden units summed out.")
@click.option("--hidden", type=click.IntRange(min=1), default=256, show_default=True,
              help="Hidden units (MLP, RBM) or channels (ResNet).")
@click.option("--depth", type=click.IntRange(min=1), default=2, show_default=True,
              help="Hidden layers (MLP) or residual blocks (ResNet).")
@click.option("--base/--no-base", default=True, show_default=True,
              help="Add the independent-sites base distribution at the data marginals.")
@click.option("--sampler", type=click.Choice(["gwg", "gibbs"]), default="gwg", show_default=True,
              help="gwg: Gibbs-With-Gradients; gibbs: random-scan Gibbs (one site per step).")
@click.option("--steps", type=click.IntRange(min=1), default=40, show_default=True,
              help="Sampler steps per parameter update (40 was best for Gibbs and the RBM "
                   "on the digits at equal time; 20 for GWG with an MLP energy, see "
                   "benchmarks/README.md).")
@click.option("--iterations", type=click.IntRange(min=1), required=True,
              help="Parameter updates in all (a resumed run continues up to this number).")
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True,
              help="Data examples and chains per update.")
@click.option("--buffer-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Persistent chains in the replay buffer.")
@click.option("--reinit-rate", type=FiniteFloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Fraction of an update's chains restarted from the base distribution.")
@click.option("--lr", "learning_rate", type=FiniteFloatRange(min=0.0, min_open=True),
              default=1e-3, show_default=True,
              help="Adam learning rate.")
@click.option("--ema-decay", type=FiniteFloatRange(0.0, 1.0, max_open=True), default=0.99,
              show_default=True,
              help="Decay of the parameters' moving average (used by sample and eval).")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also write the model file every this many updates (0: only at the end).")
@click.option("--resume", is_flag=True,
              help="Continue the run in the existing model file -o with its settings, seed "
                   "and random state: the options above except --iterations and "
                   "--checkpoint-every, and --seed, are ignored.")
@seed_option("Random seed (weights, data batches, chains); recorded in the model file. "
              "[default: drawn at random]")
@device_option
@threads_option
@_progress_option
def train(data_path: Path, output: Path, energy: str, hidden: int, depth: int, base: bool,
          sampler: str, steps: int, iterations: int, batch_size: int, buffer_size: int,
          reinit_rate: float, learning_rate: float, ema_decay: float, checkpoint_every: int,
          resume: bool, seed: int | None, device: str, progress: bool) -> None:
    """Train an energy model on DATA by persistent contrastive divergence."""
    import torch

    from potts_gwg.ebm.data import load_dataset
    from potts_gwg.ebm.modelfile import load_model_file, save_model_file
    from potts_gwg.ebm.networks import EnergySpec, IndependentSites, build_energy
    from potts_gwg.ebm.trainer import PCDTrainer, TrainConfig

    output_target(output, inputs=(data_path,))  # refused before the training, not after
    dataset = load_dataset(data_path)
    data = torch.from_numpy(dataset.train)
    if resume:
        saved = load_model_file(output)
        if (saved.spec.n_sites, saved.spec.n_states) != (dataset.n_sites, dataset.n_states):
            raise InputError(f"the model has {saved.spec.n_sites} sites × "
                             f"{saved.spec.n_states} states, the data {dataset.n_sites} × "
                             f"{dataset.n_states}", data_path)
        where = resolve_device(device)
        spec, trainer = saved.spec, saved.trainer(data, where)
    else:
        spec = EnergySpec(energy=energy, n_sites=dataset.n_sites, n_states=dataset.n_states,
                          hidden=hidden, depth=depth, base=base,
                          image_shape=dataset.image_shape)
        config = TrainConfig(sampler=sampler, steps=steps, batch_size=batch_size,
                             buffer_size=buffer_size, reinit_rate=reinit_rate,
                             learning_rate=learning_rate, ema_decay=ema_decay,
                             seed=chosen_seed(seed))
        where = resolve_device(device)
        # Built on the CPU (the weights' seed draws there), then moved: Module.to and
        # Module.cpu move in place, so one object cannot serve both devices.
        base_distribution = IndependentSites.from_data(data, dataset.n_states)
        model = build_energy(spec, base_distribution, config.seed).to(where)
        trainer = PCDTrainer(model, data.to(where), base_distribution.to(where), config)
    # Absolute, so `ebm eval` finds the data from any folder.
    extra = {"data": str(Path(data_path).resolve())}

    def checkpoint() -> None:
        save_model_file(output, trainer, spec, extra)

    trainer.run(iterations, progress=progress, checkpoint=checkpoint,
                checkpoint_every=checkpoint_every)
    checkpoint()
    last = trainer.history[-1]
    click.echo(f"trained {spec.energy} with {trainer.config.sampler}-PCD for "
               f"{trainer.iteration} updates ({trainer.config.steps} steps each, seed "
               f"{trainer.config.seed}, {where}, {trainer.seconds:.1f} s): f(data) "
               f"{last.data_energy:.2f}, f(samples) {last.sample_energy:.2f}, acceptance "
               f"{last.acceptance:.2f} -> {output}")


@command.command(name="sample")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path, readable=False))
@click.option("-n", "--n-samples", "n_samples", type=int, default=64, show_default=True,
              help="Samples to draw, one per independent chain.")
@click.option("--steps", type=int, default=1000, show_default=True,
              help="Sampler steps per chain, starting from the base distribution.")
@click.option("--sampler", type=click.Choice(["gwg", "gibbs"]), default="gwg", show_default=True,
              help="gwg: Gibbs-With-Gradients; gibbs: random-scan Gibbs.")
@click.option("--ema/--no-ema", default=True, show_default=True,
              help="Use the moving average of the parameters (or the last ones).")
@click.option("-o", "--output", type=click.Path(path_type=Path, readable=False),
              help="Write the samples as .npz ('samples': n × sites uint8, 'meta': JSON); "
                   "give -o, --png or both.")
@click.option("--png", type=click.Path(path_type=Path, readable=False),
              help="Write an image grid of the samples (image data only).")
@seed_option("Random seed, recorded in the outputs.  [default: drawn at random]")
@device_option
@threads_option
@_progress_option
def sample(model_path: Path, n_samples: int, steps: int, sampler: str, ema: bool,
           output: Path | None, png: Path | None, seed: int | None, device: str,
           progress: bool) -> None:
    """Draw samples from the trained model in MODEL."""
    import torch

    from potts_gwg.ebm.images import image_grid_png
    from potts_gwg.ebm.modelfile import load_model_file
    from potts_gwg.ebm.trainer import make_sampler
    from potts_gwg.engine import run_chains

    if output is None and png is None:
        raise InputError("nothing to write: give -o SAMPLES.npz and/or --png GRID.png")
    if n_samples < 1 or steps < 1:
        raise InputError(f"need -n >= 1 and --steps >= 1, got {n_samples}, {steps}")
    check_outputs((output, png), inputs=(model_path,))
    saved = load_model_file(model_path)
    if png is not None and saved.spec.image_shape is None:
        raise InputError("--png needs image data; this model's data have no image_shape",
                         model_path)
    seed = chosen_seed(seed)
    where = resolve_device(device)
    model, base = saved.energy(where, ema=ema), saved.base(where)
    generator = torch.Generator(device=where).manual_seed(seed)
    x0 = base.sample(n_samples, generator)
    # One sample per chain after `steps` steps; the acceptance is that of all of them.
    chains, diagnostics = run_chains(make_sampler(sampler), model, x0, n_samples=1,
                                     thin=steps, generator=generator, progress=progress)
    rows = chains[0].cpu().numpy().astype(np.uint8 if saved.spec.n_states <= 256 else np.uint16)
    if output is not None:
        meta = {"model": str(model_path), "sampler": sampler, "steps": steps, "seed": seed,
                "ema": ema, "acceptance_rate": diagnostics.acceptance_rate}
        with atomic_open(output, "wb") as stream:
            np.savez(stream, samples=rows, meta=np.array(json.dumps(meta)))
    if png is not None:
        image_grid_png(png, rows, saved.spec.image_shape, saved.spec.n_states,
                       title=f"{saved.spec.energy}, {sampler} {steps} steps, seed {seed}")
    written = " and ".join(str(path) for path in (output, png) if path is not None)
    click.echo(f"sampled {n_samples} chains × {steps} {sampler} steps (seed {seed}, {where}): "
               f"acceptance {diagnostics.acceptance_rate:.3f} -> {written}")


@command.command(name="eval")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path, readable=False))
@click.option("--data", "data_path", type=click.Path(path_type=Path, readable=False),
              help="Data file to score.  [default: the one the model was trained on]")
@click.option("--split", type=click.Choice(["test", "train"]), default="test",
              show_default=True, help="Which rows of the data file to score.")
@click.option("--ais/--no-ais", default=True, show_default=True,
              help="Estimate log Z by annealed importance sampling (GWG transitions); "
                   "--no-ais reports only the mean unnormalised f on the data.")
@click.option("--temperatures", type=int, default=10000, show_default=True,
              help="Intermediate distributions of AIS.")
@click.option("--chains", type=int, default=100, show_default=True, help="AIS chains.")
@click.option("--steps-per-temperature", type=int, default=1, show_default=True,
              help="GWG steps at each intermediate distribution.")
@click.option("--schedule", type=click.Choice(["sigmoid", "linear"]), default="sigmoid",
              show_default=True, help="Spacing of the inverse temperatures.")
@click.option("--ema/--no-ema", default=True, show_default=True,
              help="Use the moving average of the parameters (or the last ones).")
@click.option("-o", "--output", type=click.Path(path_type=Path, readable=False),
              help="Also write the results as JSON.")
@seed_option("Random seed of AIS, recorded in the output.  [default: drawn at random]")
@device_option
@threads_option
@_progress_option
def evaluate(model_path: Path, data_path: Path | None, split: str, ais: bool, temperatures: int,
             chains: int, steps_per_temperature: int, schedule: str, ema: bool,
             output: Path | None, seed: int | None, device: str, progress: bool) -> None:
    """Test log-likelihood of the model in MODEL (nats per example and bits per dimension)."""
    import torch

    from potts_gwg.ebm.ais import annealed_importance_sampling
    from potts_gwg.ebm.data import load_dataset
    from potts_gwg.ebm.modelfile import load_model_file

    check_outputs((output,), inputs=(model_path, data_path))
    saved = load_model_file(model_path)
    if data_path is None:
        if "data" not in saved.meta:
            raise InputError("the model file names no data file; give --data", model_path)
        data_path = Path(saved.meta["data"])
    dataset = load_dataset(data_path)
    rows = dataset.test if split == "test" else dataset.train
    if rows is None:
        raise InputError("no 'test' array to score (use --split train?)", data_path)
    if (dataset.n_sites, dataset.n_states) != (saved.spec.n_sites, saved.spec.n_states):
        raise InputError(f"the data have {dataset.n_sites} sites × {dataset.n_states} states, "
                         f"the model {saved.spec.n_sites} × {saved.spec.n_states}", data_path)
    seed = chosen_seed(seed)
    where = resolve_device(device)
    model, base = saved.energy(where, ema=ema), saved.base(where)
    data = torch.from_numpy(rows).to(where)
    report = {"model": str(model_path), "data": str(data_path), "split": split, "ema": ema,
              "seed": seed}
    with torch.no_grad():
        report["mean_energy"] = float(model(data).double().mean())
    if ais:
        generator = torch.Generator(device=where).manual_seed(seed)
        result = annealed_importance_sampling(model, base, temperatures, chains,
                                              steps_per_temperature, schedule, generator,
                                              progress)
        report.update({"log_z": result.log_z, "log_z_standard_error": result.standard_error,
                       "ais_effective_chains": result.effective_chains,
                       "ais_temperatures": temperatures, "ais_chains": chains,
                       "ais_steps_per_temperature": steps_per_temperature,
                       "ais_schedule": schedule, "ais_seconds": result.seconds,
                       **result.log_likelihood(model, data)})
        line = (f"log Z = {result.log_z:.3f} ± {result.standard_error:.3f} (AIS, {temperatures} "
                f"temperatures × {chains} chains, effective chains "
                f"{result.effective_chains:.1f}, seed {seed}); {split} log-likelihood "
                f"{report['log_likelihood_nats']:.3f} nats per example, "
                f"{report['bits_per_dim']:.4f} bits per dimension ({len(rows)} examples)")
    else:
        line = f"mean f on {len(rows)} {split} examples: {report['mean_energy']:.3f} (no AIS)"
    if output is not None:
        with atomic_open(output) as stream:
            json.dump(report, stream, indent=2)
            stream.write("\n")
    click.echo(line)
