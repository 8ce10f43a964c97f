"""The contact-map picture: a real PNG, written atomically, without touching pyplot."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from potts_gwg.errors import InputError
from potts_gwg.plot import contact_map_png

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


def test_writes_a_png_and_no_temporary_file(tmp_path):
    scores, distances = _example()
    target = tmp_path / "maps" / "contacts.png"
    written = contact_map_png(target, scores, distances, title="example")
    assert written == target
    data = target.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)
    assert [path.name for path in target.parent.iterdir()] == ["contacts.png"]


def test_replaces_an_existing_file_with_chosen_top_and_separation(tmp_path):
    scores, distances = _example()
    target = tmp_path / "contacts.png"
    target.write_text("old")
    contact_map_png(target, scores, distances, min_separation=12, top=5)
    assert target.read_bytes().startswith(PNG_MAGIC)
    assert [path.name for path in tmp_path.iterdir()] == ["contacts.png"]


def test_pdf_and_svg_by_extension_other_extensions_refused(tmp_path):
    scores, distances = _example()
    contact_map_png(tmp_path / "map.PDF", scores, distances)
    contact_map_png(tmp_path / "map.svg", scores, distances)
    assert (tmp_path / "map.PDF").read_bytes().startswith(b"%PDF")
    assert b"<svg" in (tmp_path / "map.svg").read_bytes()[:1000]
    with pytest.raises(InputError, match=r"map\.jpg: --plot writes png, pdf, svg"):
        contact_map_png(tmp_path / "map.jpg", scores, distances)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["map.PDF", "map.svg"]


def test_import_leaves_the_matplotlib_backend_alone():
    code = ("import sys, potts_gwg.plot; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported at import time'")
    subprocess.run([sys.executable, "-c", code], check=True)
