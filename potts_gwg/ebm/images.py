"""Image grids of discrete samples (PNG), for data whose rows are images."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..plot import new_figure

PIXELS_PER_CELL = 0.5  # inches per image in the grid (8×8 digits stay legible)


def image_grid_png(path: str | os.PathLike, rows: np.ndarray, image_shape: tuple[int, int],
                   n_states: int, title: str = "") -> Path:
    """Write ``rows (n, H·W)`` of values in ``0..n_states-1`` as a near-square grid of
    grey-scale images (0 black, n_states − 1 white), atomically; returns the path."""
    height, width = image_shape
    count = rows.shape[0]
    columns = math.ceil(math.sqrt(count))
    lines = math.ceil(count / columns)
    gap = 1
    canvas = np.full((lines * (height + gap) + gap, columns * (width + gap) + gap), 0.5)
    for k, row in enumerate(rows):
        top, left = divmod(k, columns)
        y, x = gap + top * (height + gap), gap + left * (width + gap)
        canvas[y:y + height, x:x + width] = row.reshape(height, width) / (n_states - 1)
    figure = new_figure(figsize=(max(2.0, columns * PIXELS_PER_CELL),
                                 max(2.0, lines * PIXELS_PER_CELL) + (0.3 if title else 0)))
    axes = figure.add_axes((0, 0, 1, 0.92 if title else 1))
    axes.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes.set_axis_off()
    if title:
        figure.suptitle(title, fontsize="x-small")
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    return Path(path)
