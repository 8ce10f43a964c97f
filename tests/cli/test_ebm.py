"""``potts-gwg ebm train / sample / eval`` end to end on the shipped digits, tiny settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from potts_gwg.cli.main import main

from potts_gwg.ebm.data import DIGITS_PATH
from potts_gwg.ebm.modelfile import load_model_file

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = ["--hidden", "16", "--steps", "3", "--batch-size", "20", "--buffer-size", "40",
        "--device", "cpu", "--no-progress"]


def invoke(*arguments):
    return CliRunner().invoke(main, ["ebm", *map(str, arguments)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("ebm") / "model.npz"
    result = invoke("train", DIGITS_PATH, "--iterations", "6", "--seed", "4", *TINY, "-o", path)
    assert result.exit_code == 0, result.output
    assert "trained mlp with gwg-PCD for 6 updates" in result.output and "seed 4" in result.output
    return path


def test_train_writes_a_model_file_with_its_settings(trained):
    saved = load_model_file(trained)
    assert saved.meta["iterations"] == 6 and saved.config.seed == 4
    assert saved.spec.image_shape == (8, 8) and saved.spec.hidden == 16
    assert saved.arrays["buffer"].shape == (40, 64)
    assert Path(saved.meta["data"]) == DIGITS_PATH.resolve()  # absolute: eval from anywhere


def test_resume_equals_a_run_of_all_updates_at_once(trained, tmp_path):
    once = tmp_path / "once.npz"
    assert invoke("train", DIGITS_PATH, "--iterations", "9", "--seed", "4", *TINY,
                  "-o", once).exit_code == 0
    resumed = tmp_path / "resumed.npz"
    resumed.write_bytes(trained.read_bytes())
    result = invoke("train", DIGITS_PATH, "--iterations", "9", "--resume", "--device", "cpu",
                    "--no-progress", "-o", resumed)
    assert result.exit_code == 0, result.output
    a, b = load_model_file(once).arrays, load_model_file(resumed).arrays
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_sample_writes_bits_and_a_png(trained, tmp_path):
    samples, grid = tmp_path / "s.npz", tmp_path / "grid.png"
    result = invoke("sample", trained, "-n", "9", "--steps", "20", "--seed", "1", "--device",
                    "cpu", "--no-progress", "-o", samples, "--png", grid)
    assert result.exit_code == 0, result.output
    with np.load(samples, allow_pickle=False) as archive:
        rows, meta = archive["samples"], json.loads(str(archive["meta"]))
    assert rows.shape == (9, 64) and set(np.unique(rows)) <= {0, 1} and meta["seed"] == 1
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_reports_log_likelihood_in_nats_and_bits(trained, tmp_path):
    report = tmp_path / "r.json"
    result = invoke("eval", trained, "--data", DIGITS_PATH, "--temperatures", "30", "--chains",
                    "8", "--seed", "2", "--device", "cpu", "--no-progress", "-o", report)
    assert result.exit_code == 0, result.output
    record = json.loads(report.read_text())
    nats = record["log_likelihood_nats"]
    assert re.search(rf"log-likelihood {nats:.3f} nats per example", result.output)
    assert record["bits_per_dim"] == pytest.approx(-nats / (64 * np.log(2)))
    # The independent base alone scores -24.7 nats; 6 tiny updates cannot be far from it.
    assert -30 < nats < -15 and record["seed"] == 2 and record["n_examples"] == 300


@pytest.mark.parametrize("arguments, message", [
    (["train", "absent.npz", "--iterations", "2", "-o", "{tmp}/m.npz"], "data file not found"),
    (["train", str(DIGITS_PATH), "--iterations", "2", "--energy", "rbm", "--batch-size", "60",
      "--buffer-size", "50", "-o", "{tmp}/m.npz"], "--batch-size (60) cannot exceed"),
    (["train", str(DIGITS_PATH), "--iterations", "2", "--resume", "-o", "{tmp}/m.npz"],
     "EBM model file not found"),
    (["sample", "{tmp}/data.npz", "--png", "{tmp}/g.png"], "not a potts-gwg EBM model file"),
    (["sample", "{model}"], "nothing to write"),
    (["train", str(DIGITS_PATH), "--iterations", "400", "-o", "{tmp}"], "is a folder"),
    (["eval", "{model}", "--data", "{tmp}/data.npz"], "sites"),
])
def test_bad_input_is_one_error_line_and_no_output(trained, tmp_path, arguments, message):
    np.savez(tmp_path / "data.npz", train=np.zeros((3, 5), np.uint8),
             test=np.ones((2, 5), np.uint8))
    filled = [a.format(tmp=tmp_path, model=trained) for a in arguments]
    result = invoke(*filled)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("option, value", [("--lr", "nan"), ("--lr", "inf"),
                                           ("--ema-decay", "nan")])
def test_nan_or_infinite_settings_are_usage_errors(tmp_path, option, value):
    """Click's ranges let nan (and inf, for --lr) through; FiniteFloatRange does not."""
    result = invoke("train", str(DIGITS_PATH), "--iterations", "2", option, value, "-o",
                    str(tmp_path / "m.npz"))
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}': '{value}' is not a finite number." in result.stderr
    assert not (tmp_path / "m.npz").exists()


def test_categorical_images_train_with_the_resnet_and_evaluate(tmp_path):
    """4-level 3×3 images: the one-hot path of train, sample (PNG grid) and eval."""
    rows = np.random.default_rng(0).integers(0, 4, size=(30, 9), dtype=np.uint8)
    data = tmp_path / "levels.npz"
    np.savez(data, train=rows, test=rows[:10], n_states=np.array(4),
             image_shape=np.array([3, 3]))
    model, grid = tmp_path / "m.npz", tmp_path / "g.png"
    assert invoke("train", data, "--energy", "resnet", "--depth", "1", "--iterations", "3",
                  "--seed", "0", *TINY, "-o", model).exit_code == 0
    assert load_model_file(model).spec.kind == "categorical"
    assert invoke("sample", model, "-n", "4", "--steps", "5", "--device", "cpu",
                  "--no-progress", "--png", grid).exit_code == 0
    result = invoke("eval", model, "--temperatures", "10", "--chains", "4", "--seed", "0",
                    "--device", "cpu", "--no-progress")
    assert result.exit_code == 0, result.output
    assert re.search(r"-?\d+\.\d+ nats per example, \d\.\d{4} bits per dimension \(10 examples\)",
                     result.output)


def _edited_copy(source, target, drop_meta=None, drop_prefix=None, truncate=None):
    """``source`` model file rewritten with a meta key or arrays removed, or one cut short."""
    with np.load(source) as arrays:
        contents = {name: arrays[name] for name in arrays.files}
    meta = json.loads(str(contents.pop("meta")))
    meta.pop(drop_meta, None)
    contents = {name: value for name, value in contents.items()
                if drop_prefix is None or not name.startswith(drop_prefix)}
    if truncate is not None:
        contents[truncate] = contents[truncate][: len(contents[truncate]) // 2]
    np.savez(target, meta=np.array(json.dumps(meta)), **contents)
    return target


@pytest.mark.parametrize("edit, command, message", [
    ({"drop_meta": "iterations"}, "train", "meta has no number 'iterations'"),
    ({"drop_prefix": "ema/"}, "sample", "ema/ arrays are missing"),
    ({"truncate": "generator"}, "train", "cannot continue this run here"),
])
def test_damaged_model_files_are_one_line_exit_2(trained, tmp_path, edit, command, message):
    damaged = _edited_copy(trained, tmp_path / "damaged.npz", **edit)
    arguments = (["train", DIGITS_PATH, "--iterations", "8", "--resume", "-o", damaged]
                 if command == "train" else ["sample", damaged, "-o", tmp_path / "s.npz"])
    result = invoke(*arguments, "--device", "cpu")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "damaged.npz" in lines[0]
    assert not (tmp_path / "s.npz").exists()
