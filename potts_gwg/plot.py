"""The contact-map picture: native contacts below the diagonal, top predictions above."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from potts_gwg.contacts import ranked_pairs
from potts_gwg.errors import InputError
from potts_gwg.evaluation import CONTACT_CUTOFF, native_contacts, precision_at

NATIVE_COLOUR = "0.75"
TRUE_COLOUR = "tab:blue"
FALSE_COLOUR = "tab:red"
UNKNOWN_COLOUR = "tab:orange"
AXES_POINTS = 360  # approximate width of the square axes, in points
PLOT_FORMATS = ("png", "pdf", "svg")  # chosen by the file name's extension


def new_figure(**options):
    """A matplotlib ``Figure`` drawn by Agg, without pyplot (no backend choice, no GUI).
    ``options`` go to ``Figure`` (figsize, layout, ...)."""
    _quiet_matplotlib_config()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**options)
    FigureCanvasAgg(figure)
    return figure


def _quiet_matplotlib_config() -> None:
    """Matplotlib keeps a font cache in ~/.config/matplotlib; where that cannot be written
    (HOME unset or read-only, as on some clusters) it warns on every run. Use a temporary
    folder instead, removed at exit."""
    if "MPLCONFIGDIR" in os.environ:
        return
    try:
        folder = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / \
            "matplotlib"
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK | os.X_OK)
    except (OSError, RuntimeError):                  # RuntimeError: no home folder at all
        writable = False
    if not writable:
        temporary = tempfile.mkdtemp(prefix="potts-gwg-matplotlib-")
        atexit.register(shutil.rmtree, temporary, ignore_errors=True)
        os.environ["MPLCONFIGDIR"] = temporary


def plot_format(path: str | os.PathLike) -> str:
    """The picture format that ``path``'s extension asks for; InputError for any other."""
    extension = Path(path).suffix.lower().lstrip(".")
    if extension not in PLOT_FORMATS:
        raise InputError(f"--plot writes {', '.join(PLOT_FORMATS)}: give the file one of "
                         "these extensions", path)
    return extension


def save_figure(figure, path: str | os.PathLike, extension: str) -> None:
    """Render ``figure`` into ``path`` (written directly) in ``extension``'s format."""
    figure.savefig(path, format=extension, dpi=150)


def contact_map_figure(scores: np.ndarray, distances: np.ndarray, min_separation: int = 6,
                       top: int | None = None, title: str = ""):
    """The contact map of (L, L) ``scores`` against (L, L) ``distances`` (Å), a matplotlib
    ``Figure``.

    Lower triangle: native contacts (< 8 Å) with |i − j| ≥ min_separation, grey. Upper
    triangle: the ``top`` (default L) best-scored pairs with |i − j| ≥ min_separation,
    coloured contact / non-contact / unknown (no coordinates). Axes are 1-based query
    positions; the legend gives the precision (docs' definition, unknown pairs left out).
    """
    distances = np.asarray(distances, dtype=np.float64)
    length = distances.shape[0]
    top = length if top is None else top
    predicted_i, predicted_j = ranked_pairs(scores, min_separation)
    predicted_i, predicted_j = predicted_i[:top], predicted_j[:top]
    predicted_distances = distances[predicted_i, predicted_j]
    known = np.isfinite(predicted_distances)
    is_contact = known & (predicted_distances < CONTACT_CUTOFF)
    native_i, native_j = np.nonzero(np.triu(native_contacts(distances), k=max(min_separation, 1)))
    precision = precision_at(scores, distances, min_separation, top)

    marker_area = max(4.0, (0.7 * AXES_POINTS / length) ** 2)  # about one cell, in pt²
    figure = new_figure(figsize=(6.5, 7.5))
    axes = figure.add_subplot()
    # 1-based positions; row (y) = first index, so pairs above the diagonal have x > y.
    axes.scatter(native_i + 1, native_j + 1, s=marker_area, marker="s", color=NATIVE_COLOUR,
                 linewidths=0, label=f"native contact < {CONTACT_CUTOFF:g} Å ({len(native_i)})")
    for selected, colour, name in ((is_contact, TRUE_COLOUR, "contact"),
                                   (known & ~is_contact, FALSE_COLOUR, "non-contact"),
                                   (~known, UNKNOWN_COLOUR, "unknown")):
        axes.scatter(predicted_j[selected] + 1, predicted_i[selected] + 1, s=marker_area,
                     color=colour, linewidths=0,
                     label=f"predicted, {name} ({int(selected.sum())})")
    axes.plot([], [], " ", label=f"precision, top {top} known pairs: {precision:.3f}")
    axes.plot([0.5, length + 0.5], [0.5, length + 0.5], color="0.5", linewidth=0.5)
    axes.set_xlim(0.5, length + 0.5)
    axes.set_ylim(length + 0.5, 0.5)
    axes.set_aspect("equal")
    axes.set_xlabel("query position j")
    axes.set_ylabel("query position i")
    axes.set_title(title)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize="small",
                title=f"pairs with |i − j| ≥ {min_separation}", title_fontsize="small")
    figure.tight_layout()
    return figure
