"""``dump_contacts``'s ``top``: the library's side of ``contacts --top`` (the CLI's refusals and
the formats end to end are in tests/cli/test_fit_contacts.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from potts_gwg.io.contact_formats import dump_contacts


def written(format: str, **options) -> list[str]:
    scores = np.zeros((4, 4))
    for (i, j), value in {(0, 3): 3.0, (1, 2): 2.0, (0, 2): 1.0}.items():
        scores[i, j] = scores[j, i] = value
    stream = io.StringIO()
    dump_contacts(stream, format, scores, **options)
    return stream.getvalue().splitlines()


def test_top_keeps_the_best_pairs_after_the_separation_filter():
    assert written("tsv", top=2) == ["i\tj\tscore", "1\t4\t3", "2\t3\t2"]
    assert written("tsv", min_separation=2, top=1) == ["i\tj\tscore", "1\t4\t3"]
    assert written("tsv", top=100) == written("tsv")


@pytest.mark.parametrize("format, top, message", [("mat", 3, "mat format"),
                                                  ("tsv", 0, "at least 1")])
def test_top_for_the_matrix_or_below_one_is_a_value_error(format, top, message):
    with pytest.raises(ValueError, match=message):
        written(format, top=top)


def test_the_matrix_is_shifted_to_zero_as_ccmpred_writes_it():
    """APC scores can be negative; CCMpred's matrix is not (its lowest pair is 0), so the
    diagonal and the pairs masked by min_separation (0) rank last for any reader."""
    scores = np.array([[0.0, -0.5, 1.0], [-0.5, 0.0, 0.25], [1.0, 0.25, 0.0]])
    stream = io.StringIO()
    dump_contacts(stream, "mat", scores, min_separation=2)
    matrix = np.loadtxt(io.StringIO(stream.getvalue()))
    assert np.array_equal(matrix, [[0.0, 0.0, 1.5], [0.0, 0.0, 0.0], [1.5, 0.0, 0.0]])


def test_casp_p_is_the_pair_s_whatever_the_separation_filter():
    rows = [line.split() for line in written("casp", min_separation=2) if line[0].isdigit()]
    assert [(i, j, p) for i, j, _, _, p in rows] == [("1", "4", "1.0000"), ("1", "3", "0.3333"),
                                                     ("2", "4", "0.0000")]
    assert max(len(line) for line in written("casp")) <= 80


def test_casp_remarks_longer_than_a_line_are_wrapped_without_losing_text():
    path = "/data/my folder/" + "a-very-long-folder-name/" * 6 + "model.npz"
    remark = f"scores of   {path} (seed 7)"
    lines = [line for line in written("casp", remarks=(remark, "short")) if
             line.startswith("REMARK")]
    assert max(len(line) for line in lines) <= 80 and lines[-1] == "REMARK short"
    assert "".join(line[len("REMARK "):] for line in lines[:-1]) == " ".join(remark.split())


def test_casp_remarks_escape_what_is_not_ascii():
    """A model path that is no UTF-8 (bytes held as surrogates) was an internal error."""
    remark = "model /data/m\udcff\u00e9.npz"
    lines = written("casp", remarks=(remark,), target="m\udcff")
    assert "TARGET m\\udcff" in lines and "REMARK model /data/m\\udcff\\xe9.npz" in lines
