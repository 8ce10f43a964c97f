"""The joint-model toy problem of "No Conditional Models for Me": 8 Gaussian modes on a
circle, labelled by 3 binary attributes (the bits of the mode's index, most significant
first, so each attribute splits the modes into two halves of 4), and its pictures.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..atomic import atomic_path
from ..plot import new_figure
from .joint import (
    JointEnergy,
    JointSampler,
    Langevin,
    anneal_data_given_labels,
    enumerate_labels,
    labels_like,
    run_joint_chains,
    uniform_data,
)

N_MODES = 8
N_ATTRIBUTES = 3
RADIUS = 2.0  # circle radius (data units)
STD = 0.15    # per-coordinate standard deviation of each mode; neighbours are 1.53 apart


def mode_centres(n_modes: int = N_MODES, radius: float = RADIUS) -> Tensor:
    """``(n_modes, 2)`` centres, mode m at angle 2π m / n_modes."""
    angles = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    return radius * torch.stack([angles.cos(), angles.sin()], 1).float()


def mode_to_labels(modes: Tensor, n_attributes: int = N_ATTRIBUTES) -> Tensor:
    """Mode indices ``(n,)`` -> bits ``(n, n_attributes)`` long, most significant first."""
    shifts = torch.arange(n_attributes - 1, -1, -1, device=modes.device)
    return (modes.unsqueeze(1) >> shifts) & 1


def labels_to_mode(labels: Tensor) -> Tensor:
    """Bits ``(n, k)`` (most significant first) -> mode indices ``(n,)``."""
    return _configuration_index(labels, 2)


def nearest_mode(x: Tensor, radius: float = RADIUS) -> Tensor:
    """Index ``(n,)`` of the mode centre nearest to each point ``x (n, 2)``."""
    centres = mode_centres(N_MODES, radius).to(x.device, x.dtype)
    return torch.cdist(x, centres).argmin(1)


def circle_toy(n: int, generator: torch.Generator, radius: float = RADIUS,
               std: float = STD) -> tuple[Tensor, Tensor]:
    """n points ``x (n, 2)`` float32 from the equal-weight mixture and their labels
    ``y (n, 3)`` long (the bits of the mode they were drawn from)."""
    modes = torch.randint(N_MODES, (n,), generator=generator)
    x = mode_centres(N_MODES, radius)[modes] + std * torch.randn(n, 2, generator=generator)
    return x, mode_to_labels(modes)


def scatter_panels_png(path: str | os.PathLike,
                       panels: Sequence[tuple[str, Tensor, Tensor | None]],
                       radius: float = RADIUS, mark_modes: bool = True) -> Path:
    """Scatter plots of 2-D points, one panel per (title, x ``(n, 2)``, colour ``(n,)`` ints or
    None), four to a row; ``mark_modes`` writes each toy mode's bits beside it. Atomic."""
    columns = min(4, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = new_figure(figsize=(3.0 * columns, 3.1 * rows))
    points_all = torch.cat([points.detach().cpu() for _, points, _ in panels])
    limit = max(radius * 1.6, float(points_all.abs().quantile(0.99)) * 1.1)
    centres = mode_centres(N_MODES, radius)
    for number, (title, points, colour) in enumerate(panels, 1):
        axes = figure.add_subplot(rows, columns, number)
        points = points.detach().cpu()
        if colour is None:
            axes.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5, color="tab:blue")
        else:
            axes.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5, c=colour.cpu(),
                         cmap="tab10", vmin=0, vmax=9)
        if mark_modes:
            for mode, centre in enumerate(centres):
                bits = "".join(str(int(b)) for b in mode_to_labels(torch.tensor([mode]))[0])
                axes.annotate(bits, tuple(centre * 1.3), ha="center", va="center", fontsize=7,
                              color="0.4")
        axes.set_xlim(-limit, limit)
        axes.set_ylim(-limit, limit)
        axes.set_aspect("equal")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(title, fontsize=8)
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    return Path(path)


def sample_panels(joint: JointEnergy, n: int, low: Tensor, high: Tensor, generator: torch.Generator,
                  langevin: Langevin, steps: int = 500, smc_temperatures: int = 50,
                  smc_steps: int = 4) -> list[tuple[str, Tensor, Tensor | None]]:
    """The pictures' samples from a 2-D joint model, all chains started from noise:

    joint samples (MWG, colour = sampled y); x | y for every label configuration by annealed
    SMC and by plain Langevin (colour = the conditioning y); and, per label site j and value
    v, x | y_j = v with the other sites free (MWG holding site j, the paper's Figure 1).
    ``n`` chains per panel (split evenly over configurations); ``low``/``high`` ``(2,)`` bound
    the uniform starts, and the SMC base is the Gaussian filling that box.
    """
    labels = enumerate_labels(joint.n_labels, joint.n_states, device=low.device)
    count = labels.shape[0]
    per = max(1, n // count)
    configuration = torch.arange(count, device=low.device).repeat_interleave(per)
    colour = configuration % 10

    def start(size: int) -> Tensor:
        return uniform_data(size, low, high, generator)

    joint_run = run_joint_chains(JointSampler(langevin=langevin), joint, start(n),
                                 labels_like(None, n, joint.n_labels, joint.n_states, generator,
                                             low.device), burn_in=steps, generator=generator)
    panels = [("joint samples (colour: y)", joint_run.x[-1],
               _configuration_index(joint_run.y[-1], joint.n_states) % 10)]
    mean, std = (low + high) / 2, (high - low) / 4
    annealed = torch.cat([anneal_data_given_labels(joint, row, per, mean, std, generator,
                                                   langevin, smc_temperatures, smc_steps).x
                          for row in labels])
    panels.append(("x | y, annealed SMC (colour: y)", annealed, colour))
    plain = run_joint_chains(JointSampler(langevin=langevin, update_labels=False), joint,
                             start(len(configuration)), labels[configuration], burn_in=steps,
                             generator=generator)
    panels.append(("x | y, Langevin from noise (colour: y)", plain.x[-1], colour))
    for site in range(joint.n_labels):
        fixed = torch.zeros(joint.n_labels, dtype=torch.bool, device=low.device)
        fixed[site] = True
        for value in range(joint.n_states):
            y0 = labels_like(None, n, joint.n_labels, joint.n_states, generator, low.device)
            y0[:, site] = value
            run = run_joint_chains(JointSampler(langevin=langevin, fixed_sites=fixed), joint,
                                   start(n), y0, burn_in=steps, generator=generator)
            panels.append((f"x | y{site + 1} = {value}", run.x[-1], None))
    return panels


def _configuration_index(y: Tensor, n_states: int) -> Tensor:
    """Row index of each label vector in :func:`enumerate_labels` order."""
    weights = n_states ** torch.arange(y.shape[1] - 1, -1, -1, device=y.device)
    return (y * weights).sum(1)
