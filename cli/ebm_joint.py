"""``potts-gwg ebm joint``: joint EBMs of continuous data and discrete labels (toy data, PCD
training with missing labels, joint and conditional sampling, prediction)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from potts_gwg import __version__
from potts_gwg.atomic import atomic_path, check_outputs
from potts_gwg.device import resolve_device
from potts_gwg.errors import InputError
from potts_gwg.joint_settings import JointTrainingConfig

from .main import LazyGroup
from .options import FiniteFloatRange, chosen_seed, device_option, seed_option, threads_option

if TYPE_CHECKING:
    import torch

    from potts_gwg.ebm.joint import Langevin

# Torch and the joint-EBM modules are imported inside the commands, so that `--help` and usage
# errors do not load them (~2 s); the option defaults come from the torch-free settings.
DEFAULTS = JointTrainingConfig()
PLOT_CHAINS = 800  # chains behind each panel of train --plot


def _parse_sites(text: str, n_labels: int, n_states: int) -> dict[int, int]:
    """'1=0,3=1' (1-based label sites) -> {0: 0, 2: 1}, validated."""
    given = {}
    for item in text.split(","):
        site, _, value = item.strip().partition("=")
        try:
            site_index, label = int(site) - 1, int(value)
        except ValueError:
            raise InputError(f"--given {text!r}: expected SITE=VALUE pairs such as 1=0,3=1 "
                             f"(sites 1..{n_labels})") from None
        if not 0 <= site_index < n_labels or not 0 <= label < n_states:
            raise InputError(f"--given {item.strip()!r}: sites are 1..{n_labels} and values "
                             f"0..{n_states - 1}")
        given[site_index] = label
    return given


@click.group(name="joint", cls=LazyGroup)
def command():
    """Joint energy-based models f(x, y) of continuous x and discrete labels y.

    Sampling alternates a Gibbs-With-Gradients step on y | x and a Langevin step on x | y
    ("No Conditional Models for Me"). Data files are .npz with x (N, d) floats and y (N, k)
    integer labels, a row of -1 marking an unlabelled example.

    \b
    Example (the paper's toy problem, 10 % of the labels kept):
      potts-gwg ebm joint toy -o toy.npz --labelled 0.1 --seed 0
      potts-gwg ebm joint train toy.npz -o joint.npz --seed 0 --plot joint.png
      potts-gwg ebm joint toy -o toy_test.npz -n 1000 --seed 1
      potts-gwg ebm joint predict joint.npz toy_test.npz
      potts-gwg ebm joint sample joint.npz -n 500 --given 1=1 -o samples.npz
    """


@command.command(name="toy")
@click.option("-o", "--output", type=click.Path(path_type=Path, readable=False), required=True,
              help="Data file (.npz) to write.")
@click.option("-n", "n_points", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Number of points.")
@click.option("--labelled", type=FiniteFloatRange(0.0, 1.0), default=1.0, show_default=True,
              help="Fraction of points that keep their labels (the rest get -1).")
@seed_option("Random seed (recorded in the file).  [default: drawn at random]")
def toy(output: Path, n_points: int, labelled: float, seed: int | None) -> None:
    """Write the toy data: 8 Gaussian modes on a circle, labels = the 3 bits of the mode."""
    import torch

    from potts_gwg.ebm.joint_toy import circle_toy
    from potts_gwg.ebm.joint_train import save_joint_data

    seed = chosen_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x, y = circle_toy(n_points, generator)
    keep = torch.rand(n_points, generator=generator) < labelled
    save_joint_data(output, x, y, keep, {"source": "circle_toy", "seed": seed,
                                         "labelled_fraction": labelled})
    click.echo(f"wrote {output}: {n_points} points, {int(keep.sum())} labelled, seed {seed}")


@command.command(name="train")
@click.argument("data", type=click.Path(path_type=Path, readable=False))
@click.option("-o", "--output", type=click.Path(path_type=Path, readable=False), required=True,
              help="Model file (.npz) to write (the parameter EMA).")
@click.option("--hidden", default="128,128,128", show_default=True,
              help="Hidden layer widths of the MLP on [x, y].")
@click.option("--iterations", type=click.IntRange(min=1), default=DEFAULTS.iterations,
              show_default=True, help="Parameter updates.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size,
              show_default=True, help="Data rows (and buffer chains) per update.")
@click.option("--lr", "learning_rate", type=FiniteFloatRange(min=0, min_open=True),
              default=DEFAULTS.learning_rate, show_default=True, help="Adam learning rate.")
@click.option("--sampler-steps", type=click.IntRange(min=1), default=DEFAULTS.sampler_steps,
              show_default=True, help="Joint sampler steps per update (PCD).")
@click.option("--buffer-size", type=click.IntRange(min=1), default=DEFAULTS.buffer_size,
              show_default=True, help="Replay buffer of persistent (x, y) chains.")
@click.option("--reinit-rate", type=FiniteFloatRange(0.0, 1.0), default=DEFAULTS.reinit_rate,
              show_default=True, help="Fraction of buffer chains restarted from noise.")
@click.option("--step-size", type=FiniteFloatRange(min=0, min_open=True),
              default=DEFAULTS.step_size, show_default=True, help="Langevin step size ε.")
@click.option("--temperature", type=FiniteFloatRange(min=0, min_open=True),
              default=DEFAULTS.temperature, show_default=True,
              help="Langevin temperature λ (samples follow exp(f / λ) in x).")
@click.option("--mala/--no-mala", default=False, show_default=True,
              help="Metropolis-adjusted Langevin instead of the unadjusted step.")
@click.option("--label-sampler", type=click.Choice(["gwg", "gibbs"]), default="gwg",
              show_default=True, help="Kernel for y | x.")
@click.option("--missing", type=click.Choice(["marginal", "sample"]), default="marginal",
              show_default=True,
              help="Unlabelled rows: sum y out exactly, or impute it with label chains.")
@click.option("--missing-steps", type=click.IntRange(min=1), default=DEFAULTS.missing_steps,
              show_default=True, help="--missing sample: label-chain steps per visit.")
@click.option("--balance/--no-balance", default=DEFAULTS.balance, show_default=True,
              help="With labelled and unlabelled rows: --batch-size of each per update "
                   "(equal weight), instead of one batch drawn from all rows.")
@click.option("--warmup", type=click.IntRange(min=0), default=DEFAULTS.warmup,
              show_default=True, help="Updates of linear learning-rate warm-up.")
@click.option("--energy-l2", type=FiniteFloatRange(min=0.0), default=DEFAULTS.energy_l2,
              show_default=True, help="Penalty on f² of data and samples (stabilises f).")
@click.option("--ema", type=FiniteFloatRange(0.0, 1.0, max_open=True), default=DEFAULTS.ema,
              show_default=True, help="Decay of the parameter average that is saved.")
@seed_option("Random seed (recorded in the model).  [default: drawn at random]")
@click.option("--plot", type=click.Path(path_type=Path, readable=False), default=None,
              help="PNG of data, joint and conditional samples (2-D data only).")
@click.option("--plot-steps", type=click.IntRange(min=1), default=500, show_default=True,
              help="Sampler steps behind each panel of --plot (SMC: a tenth as many "
                   "temperatures).")
@device_option
@threads_option
def train(data: Path, output: Path, hidden: str, iterations: int, batch_size: int,
          learning_rate: float, sampler_steps: int, buffer_size: int, reinit_rate: float,
          step_size: float, temperature: float, mala: bool, label_sampler: str, missing: str,
          missing_steps: int, balance: bool, warmup: int, energy_l2: float, ema: float,
          seed: int | None, plot: Path | None, plot_steps: int, device: str) -> None:
    """Fit a joint EBM to DATA by persistent contrastive divergence (missing labels: the
    paper's equation 8)."""
    import torch

    from potts_gwg.ebm.joint import Langevin, MLPJointEnergy
    from potts_gwg.ebm.joint_toy import sample_panels, scatter_panels_png
    from potts_gwg.ebm.joint_train import (
        config_record,
        load_joint_data,
        save_joint_model,
        train_joint,
    )

    check_outputs((output, plot), inputs=(data,))
    try:
        widths = [int(width) for width in hidden.split(",")]
    except ValueError:
        raise InputError(f"--hidden {hidden!r}: expected comma-separated integers") from None
    if not widths or min(widths) < 1:
        raise InputError(f"--hidden {hidden!r}: widths must be positive")
    x, y, labelled, data_meta = load_joint_data(data)
    if plot is not None and x.shape[1] != 2:
        raise InputError(f"--plot needs 2-D data; {data} has d = {x.shape[1]}")
    seed = chosen_seed(seed)
    where = resolve_device(device)
    n_states = int(y[labelled].max()) + 1 if bool(labelled.any()) else 2
    n_states = max(n_states, int(data_meta.get("n_states", 2)))
    kind = "binary" if n_states == 2 else "categorical"
    config = JointTrainingConfig(
        iterations=iterations, batch_size=batch_size, learning_rate=learning_rate,
        sampler_steps=sampler_steps, buffer_size=buffer_size, reinit_rate=reinit_rate,
        step_size=step_size, temperature=temperature, adjusted=mala,
        label_sampler=label_sampler, missing=missing, missing_steps=missing_steps,
        balance=balance, warmup=warmup, energy_l2=energy_l2, ema=ema)
    torch.manual_seed(seed)
    joint = MLPJointEnergy(x.shape[1], y.shape[1], n_states, kind, widths).to(where)
    generator = torch.Generator(device=where).manual_seed(seed)
    click.echo(f"training on {x.shape[0]} rows ({int(labelled.sum())} labelled), "
               f"d = {x.shape[1]}, k = {y.shape[1]}, q = {n_states}, seed {seed}", err=True)
    result = train_joint(joint, x.to(where), y.to(where), labelled.to(where), config,
                         generator, log_every=max(1, iterations // 10),
                         callback=lambda record: click.echo(
                             "  ".join(f"{key} {value:.3g}" for key, value in record.items()),
                             err=True))
    meta = {"version": __version__, "seed": seed, "data": str(data),
            "training": config_record(config),
            "data_low": result.data_low.tolist(), "data_high": result.data_high.tolist(),
            "history": result.history, "seconds": result.seconds}
    save_joint_model(output, result.ema, meta)
    click.echo(f"wrote {output} ({result.seconds:.1f} s)")
    if plot is not None:  # many chains per panel: can take longer than the training
        click.echo(f"sampling the panels of {plot}: {PLOT_CHAINS} chains, {plot_steps} "
                   "steps each (--plot-steps) ...", err=True)
        panels = sample_panels(result.ema, PLOT_CHAINS, result.data_low, result.data_high,
                               generator, Langevin(step_size, temperature, mala), steps=plot_steps,
                               smc_temperatures=max(1, plot_steps // 10))
        scatter_panels_png(plot, [("data", x, None)] + panels,
                           mark_modes=data_meta.get("source") == "circle_toy")
        click.echo(f"wrote {plot}")


def _langevin(meta: dict, step_size: float | None, temperature: float | None,
              mala: bool | None) -> Langevin:
    """The Langevin kernel of the training run unless overridden."""
    from potts_gwg.ebm.joint import Langevin

    trained = meta.get("training", {})
    return Langevin(step_size or trained.get("step_size", DEFAULTS.step_size),
                    temperature or trained.get("temperature", DEFAULTS.temperature),
                    trained.get("adjusted", False) if mala is None else mala)


def _bounds(meta: dict, joint, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    try:
        low = torch.tensor(meta["data_low"], dtype=joint.dtype, device=joint.device)
        high = torch.tensor(meta["data_high"], dtype=joint.dtype, device=joint.device)
    except (KeyError, TypeError, ValueError):
        raise InputError("'meta' lacks the data range (data_low, data_high)", path) from None
    if low.shape != (joint.data_dim,) or high.shape != (joint.data_dim,):
        raise InputError(f"data range must have {joint.data_dim} entries", path)
    return low, high


@command.command(name="sample")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path, readable=False))
@click.option("-n", "n_samples", type=click.IntRange(min=1), required=True,
              help="Number of (x, y) samples (one chain each).")
@click.option("-o", "--output", type=click.Path(path_type=Path, readable=False), required=True,
              help=".npz to write with x (n, d), y (n, k) and meta.")
@click.option("--given", default=None, metavar="SITE=VALUE,...",
              help="Hold these label sites (1-based) at these values: samples of "
                   "(x, other labels) given them.")
@click.option("--method", type=click.Choice(["mwg", "smc"]), default="mwg", show_default=True,
              help="mwg: Metropolis-within-Gibbs chains from noise; smc: annealed SMC "
                   "(needs --given for every label site).")
@click.option("--steps", type=click.IntRange(min=1), default=500, show_default=True,
              help="MWG steps per chain; SMC: number of temperatures.")
@click.option("--step-size", type=FiniteFloatRange(min=0, min_open=True), default=None,
              help="Langevin ε.  [default: the training value]")
@click.option("--temperature", type=FiniteFloatRange(min=0, min_open=True), default=None,
              help="Langevin λ.  [default: the training value]")
@click.option("--mala/--no-mala", default=None,
              help="Metropolis-adjusted Langevin steps on x.  [default: as in training]")
@seed_option("Random seed (recorded in the output).  [default: drawn at random]")
@click.option("--plot", type=click.Path(path_type=Path, readable=False), default=None,
              help="PNG scatter of the samples (2-D data only).")
@device_option
@threads_option
def sample(model_path: Path, n_samples: int, output: Path, given: str | None, method: str,
           steps: int, step_size: float | None, temperature: float | None, mala: bool | None,
           seed: int | None, plot: Path | None, device: str) -> None:
    """Draw joint or conditional samples from a trained joint model."""
    import numpy as np
    import torch

    from potts_gwg.ebm.joint import (
        JointSampler,
        anneal_data_given_labels,
        labels_like,
        run_joint_chains,
        uniform_data,
    )
    from potts_gwg.ebm.joint_toy import scatter_panels_png
    from potts_gwg.ebm.joint_train import load_joint_model

    check_outputs((output, plot), inputs=(model_path,))
    where = resolve_device(device)
    joint, meta = load_joint_model(model_path, where)
    if plot is not None and joint.data_dim != 2:
        raise InputError(f"--plot needs 2-D data; the model has d = {joint.data_dim}")
    seed = chosen_seed(seed)
    generator = torch.Generator(device=where).manual_seed(seed)
    langevin = _langevin(meta, step_size, temperature, mala)
    low, high = _bounds(meta, joint, model_path)
    fixed = _parse_sites(given, joint.n_labels, joint.n_states) if given else {}
    y0 = labels_like(None, n_samples, joint.n_labels, joint.n_states, generator, where)
    for site, value in fixed.items():
        y0[:, site] = value
    if method == "smc":
        if len(fixed) != joint.n_labels:
            raise InputError(f"--method smc samples x | y: give all {joint.n_labels} label "
                             f"sites with --given")
        annealed = anneal_data_given_labels(joint, y0[0], n_samples, (low + high) / 2,
                                            (high - low) / 4, generator, langevin, steps)
        x, y = annealed.x, y0
        summary = f"{annealed.resamplings} resamplings, final ESS {annealed.final_ess:.0f}"
    else:
        mask = torch.zeros(joint.n_labels, dtype=torch.bool, device=where)
        mask[list(fixed)] = True
        sampler = JointSampler(langevin=langevin, fixed_sites=mask if fixed else None)
        run = run_joint_chains(sampler, joint, uniform_data(n_samples, low, high, generator),
                               y0, thin=steps, generator=generator)  # `steps` in all
        x, y = run.x[-1], run.y[-1]
        summary = (f"acceptance: labels {run.label_acceptance:.3f}, "
                   f"x {run.data_acceptance:.3f}")
    record = {"model": str(model_path), "seed": seed, "method": method, "steps": steps,
              "given": given, "langevin": repr(langevin)}
    with atomic_path(output, suffix=".npz") as temporary, open(temporary, "wb") as stream:
        np.savez(stream, x=x.detach().cpu().numpy(), y=y.cpu().numpy(),
                 meta=np.array(json.dumps(record)))
    click.echo(f"wrote {output}: {n_samples} samples ({summary})")
    if plot is not None:
        scatter_panels_png(plot, [(f"samples{' | ' + given if given else ''}", x, None)],
                           mark_modes=False)
        click.echo(f"wrote {plot}")


@command.command(name="predict")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path, readable=False))
@click.argument("data", type=click.Path(path_type=Path, readable=False))
@click.option("--method", type=click.Choice(["exact", "sample"]), default="exact",
              show_default=True,
              help="exact: argmax of p(y | x) by enumeration; sample: per-site majority of "
                   "label-chain samples.")
@click.option("--samples", type=click.IntRange(min=1), default=10, show_default=True,
              help="sample: label states kept per x.")
@click.option("--steps", type=click.IntRange(min=0), default=200, show_default=True,
              help="sample: label-chain steps before the first kept state.")
@click.option("-o", "--output", type=click.Path(path_type=Path, readable=False), default=None,
              help=".npz to write the predicted labels y (N, k) to.")
@seed_option("Random seed of --method sample.  [default: drawn at random]")
@device_option
@threads_option
def predict(model_path: Path, data: Path, method: str, samples: int, steps: int,
            output: Path | None, seed: int | None, device: str) -> None:
    """Predict the labels of the rows of DATA; prints the accuracy on its labelled rows."""
    import numpy as np
    import torch

    from potts_gwg.ebm.joint import attribute_accuracy, predict_by_sampling, predict_exact
    from potts_gwg.ebm.joint_train import load_joint_data, load_joint_model

    check_outputs((output,), inputs=(model_path, data))
    where = resolve_device(device)
    joint, _ = load_joint_model(model_path, where)
    x, y, labelled, _ = load_joint_data(data)
    if x.shape[1] != joint.data_dim or y.shape[1] != joint.n_labels:
        raise InputError(f"data has d = {x.shape[1]}, k = {y.shape[1]}; the model expects "
                         f"d = {joint.data_dim}, k = {joint.n_labels}", data)
    x = x.to(where)
    seed = chosen_seed(seed)
    generator = torch.Generator(device=where).manual_seed(seed)
    if method == "exact":
        predicted = predict_exact(joint, x)
    else:
        predicted = predict_by_sampling(joint, x, generator, samples, steps)
    predicted = predicted.cpu()
    if bool(labelled.any()):
        per_site, whole = attribute_accuracy(predicted[labelled], y[labelled])
        click.echo(f"{method} prediction on {int(labelled.sum())} labelled rows: "
                   f"per-label accuracy {per_site:.4f}, all labels right {whole:.4f}")
    if output is not None:
        with atomic_path(output, suffix=".npz") as temporary, open(temporary, "wb") as stream:
            np.savez(stream, y=predicted.numpy(), meta=np.array(json.dumps(
                {"model": str(model_path), "data": str(data), "method": method,
                 "seed": seed})))
        click.echo(f"wrote {output}")
