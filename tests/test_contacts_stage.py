"""``contacts_stage`` called as a batch runner or script does: what it writes and returns
(the command's options and errors: tests/cli/test_fit_contacts.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from potts_gwg.contacts import contact_scores, ranked_pairs
from potts_gwg.contacts_stage import contacts_stage
from potts_gwg.errors import InputError
from potts_gwg.io.model_file import load_model

EXAMPLE_PDB = Path(__file__).resolve().parents[1] / "data" / "PF00018_2O9S" / "2O9S_A.pdb"


def test_scores_written_ranked_and_evaluated_against_the_structure(example_model, tmp_path):
    output = tmp_path / "c.tsv"
    summary = contacts_stage(example_model, output, structure=EXAMPLE_PDB, chain="A", top=10)
    assert summary.output == output and summary.length == 48 and summary.plot is None
    lines = output.read_text().splitlines()
    assert lines[0] == "i\tj\tscore" and len(lines) == 11
    model = load_model(example_model)
    scores = contact_scores(model.J, model.alphabet)
    first, second = ranked_pairs(scores)
    written = [tuple(int(value) for value in line.split("\t")[:2]) for line in lines[1:]]
    assert written == [(i + 1, j + 1) for i, j in zip(first[:10], second[:10])]
    # evaluated over all pairs whatever ``top``: the table of the quick start
    row = next(row for row in summary.precision
               if row["min_separation"] == 6 and row["top"] == "L")
    assert row["precision"] == pytest.approx(0.562, abs=5e-4)
    assert summary.mapping["chain"] == "A" and summary.mapping["identity"] > 0.9
    report = json.loads(summary.as_json())
    assert report["model"]["path"] == str(example_model) and report["output"] == str(output)


def test_a_refused_plot_leaves_no_contacts_file(example_model, tmp_path):
    output = tmp_path / "c.tsv"
    with pytest.raises(InputError, match="--plot needs --pdb"):
        contacts_stage(example_model, output, plot=tmp_path / "map.png")
    assert list(tmp_path.iterdir()) == []
    summary = contacts_stage(example_model, None)   # scores only: nothing written
    assert summary.output is None and summary.precision is None
    assert summary.length == 48


def test_casp_output_names_the_target_and_where_the_scores_come_from(example_model, tmp_path):
    """A batch passes the family id (its model files are all called model.npz)."""
    output = tmp_path / "c.rr"
    contacts_stage(example_model, output, format="casp", top=1, target="sh3")
    lines = output.read_text().splitlines()
    remarks = " ".join(line for line in lines if line.startswith("REMARK "))
    assert lines[1] == "TARGET sh3" and lines[3].startswith("REMARK model ")
    assert "REMARK fit method plm, seed 0, query_name 2O9S_A REMARK msa " in remarks
    assert remarks.replace("REMARK ", "").replace(" ", "").startswith(f"model{example_model}")
