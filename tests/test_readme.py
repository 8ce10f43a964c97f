"""The README's Python section runs as written (with a shorter PCD budget, for time)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def python_section_code() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_python_section_runs(monkeypatch):
    code = python_section_code()
    budget = "n_chains=1024, max_iterations=200"
    assert budget in code, "the test shortens this PCD budget; update both together"
    monkeypatch.chdir(ROOT)  # the snippet names the shipped example by relative path
    namespace: dict = {}
    exec(compile(code.replace(budget, "n_chains=64, max_iterations=4"), "README.md", "exec"),
         namespace)
    length = namespace["alignment"].indices.shape[1]
    assert namespace["scores"].shape == (length, length)
    assert {row["min_separation"] for row in namespace["table"]} == {6, 12, 24}
    assert namespace["ml"].J.shape == (length, length, 21, 21)
    assert np.isfinite(namespace["ml"].J).all()
