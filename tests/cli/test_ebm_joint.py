"""``potts-gwg ebm joint``: toy data, training, sampling and prediction through the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from potts_gwg.cli.ebm_joint import command
from potts_gwg.cli.main import PottsGroup

pytestmark = pytest.mark.usefixtures("single_thread")


def invoke(*arguments: str):
    """Run ``joint`` under the CLI's error handling (as ``potts-gwg ebm joint`` does)."""
    group = PottsGroup(name="ebm")
    group.add_command(command)
    return CliRunner().invoke(group, ["joint", *arguments])


def test_toy_train_sample_predict(tmp_path):
    data, model = tmp_path / "toy.npz", tmp_path / "joint.npz"
    result = invoke("toy", "-o", str(data), "-n", "300", "--labelled", "0.5", "--seed", "1")
    assert result.exit_code == 0, result.output
    with np.load(data, allow_pickle=False) as archive:
        assert archive["x"].shape == (300, 2) and archive["y"].shape == (300, 3)
        assert 100 < int((archive["y"][:, 0] == -1).sum()) < 200
    plot = tmp_path / "train.png"
    result = invoke("train", str(data), "-o", str(model), "--iterations", "3",
                    "--batch-size", "20", "--sampler-steps", "2", "--buffer-size", "50",
                    "--hidden", "8,8", "--seed", "2", "--device", "cpu", "--plot", str(plot),
                    "--plot-steps", "5")
    assert result.exit_code == 0, result.output
    assert model.exists() and plot.stat().st_size > 0
    assert f"sampling the panels of {plot}: 800 chains, 5 steps each" in result.stderr

    samples = tmp_path / "samples.npz"
    result = invoke("sample", str(model), "-n", "16", "--given", "1=1", "--steps", "3",
                    "-o", str(samples), "--seed", "3", "--device", "cpu")
    assert result.exit_code == 0, result.output
    with np.load(samples, allow_pickle=False) as archive:
        assert archive["x"].shape == (16, 2) and (archive["y"][:, 0] == 1).all()
    result = invoke("sample", str(model), "-n", "8", "--given", "1=1,2=0,3=1", "--method",
                    "smc", "--steps", "3", "-o", str(samples), "--device", "cpu")
    assert result.exit_code == 0, result.output
    with np.load(samples, allow_pickle=False) as archive:
        assert (archive["y"] == [1, 0, 1]).all()

    predictions = tmp_path / "predicted.npz"
    for method in ("exact", "sample"):
        result = invoke("predict", str(model), str(data), "--method", method, "--steps", "2",
                        "-o", str(predictions), "--device", "cpu", "--seed", "4")
        assert result.exit_code == 0, result.output
        assert "per-label accuracy" in result.output
        with np.load(predictions, allow_pickle=False) as archive:
            assert archive["y"].shape == (300, 3)


def test_bad_input_is_one_error_line_and_no_output(tmp_path):
    data = tmp_path / "toy.npz"
    assert invoke("toy", "-o", str(data), "-n", "50", "--seed", "1").exit_code == 0
    missing = invoke("train", str(tmp_path / "none.npz"), "-o", str(tmp_path / "m.npz"))
    assert missing.exit_code == 2 and "error:" in missing.output
    assert "Traceback" not in missing.output and not (tmp_path / "m.npz").exists()
    smc = invoke("sample", str(data), "-n", "4", "-o", str(tmp_path / "s.npz"))
    assert smc.exit_code == 2 and "joint model" in smc.output
    assert not (tmp_path / "s.npz").exists()
