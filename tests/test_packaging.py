"""What a wheel of the package carries: the data that library functions load at run time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_carries_the_digits_with_their_licence(tmp_path):
    # load_digits() reads potts_gwg/digits/digits.npz; a wheel without it would only work
    # from a checkout. Built from a copy: no stale build/ of the checkout can leak in.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(tmp_path), str(source)], capture_output=True, text=True,
                           check=False)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("potts_gwg-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"potts_gwg/digits/digits.npz", "potts_gwg/digits/LICENSE",
            "potts_gwg/digits/SOURCE.md"} <= names
    assert "potts_gwg/cli/main.py" in names
