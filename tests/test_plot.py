"""The contact-map picture: real PNG, PDF or SVG files, without touching pyplot (atomic
writing is ``contacts_stage``'s, tested through ``potts-gwg contacts --plot`` in
tests/cli/test_fit_contacts.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from potts_gwg.errors import InputError
from potts_gwg.plot import contact_map_figure, plot_format, save_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _example(length: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Distances of a helix-like chain folded back on itself, one residue unresolved."""
    t = np.arange(length)
    coordinates = np.stack([3.0 * np.cos(t), 3.0 * np.sin(t), 1.5 * np.abs(t - length / 2)], 1)
    distances = np.linalg.norm(coordinates[:, None] - coordinates[None], axis=-1)
    distances[5, :] = distances[:, 5] = np.nan
    rng = np.random.default_rng(0)
    noise = rng.normal(scale=3.0, size=(length, length))
    scores = -np.nan_to_num(distances, nan=10.0) + noise + noise.T
    return scores, distances


def write(path, scores, distances, **options):
    save_figure(contact_map_figure(scores, distances, **options), path, plot_format(path))


def test_writes_a_png(tmp_path):
    scores, distances = _example()
    target = tmp_path / "contacts.png"
    write(target, scores, distances, title="example")
    data = target.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)


def test_top_and_separation_change_the_picture(tmp_path):
    scores, distances = _example()
    write(tmp_path / "a.png", scores, distances)
    write(tmp_path / "b.png", scores, distances, min_separation=12, top=5)
    assert (tmp_path / "b.png").read_bytes().startswith(PNG_MAGIC)
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()


def test_pdf_and_svg_by_extension_other_extensions_refused(tmp_path):
    scores, distances = _example()
    write(tmp_path / "map.PDF", scores, distances)
    write(tmp_path / "map.svg", scores, distances)
    assert (tmp_path / "map.PDF").read_bytes().startswith(b"%PDF")
    assert b"<svg" in (tmp_path / "map.svg").read_bytes()[:1000]
    with pytest.raises(InputError, match=r"map\.jpg: --plot writes png, pdf, svg"):
        plot_format(tmp_path / "map.jpg")


def test_import_leaves_the_matplotlib_backend_alone():
    code = ("import sys, potts_gwg.plot; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported at import time'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_unwritable_home_gives_no_matplotlib_warnings(tmp_path):
    """Matplotlib wants ~/.config/matplotlib; where it cannot be made (HOME is a file here,
    as good as read-only for root) it printed two long warnings on every plot."""
    home = tmp_path / "home"
    home.write_text("not a folder")
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME")}
    code = ("from potts_gwg.plot import new_figure\n"
            "figure = new_figure(figsize=(2, 2))\n"
            "figure.add_axes((0, 0, 1, 1)).plot([0, 1])\n"
            f"figure.savefig({str(tmp_path / 'out.png')!r})\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**environment, "HOME": str(home)}, check=False)
    assert result.returncode == 0, result.stderr
    assert "mkdir -p failed" not in result.stderr and "temporary cache" not in result.stderr
    assert (tmp_path / "out.png").read_bytes().startswith(PNG_MAGIC)
