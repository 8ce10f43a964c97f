"""The deep-EBM commands on a CUDA device: training, sampling, AIS and the joint model.

Skipped without a GPU (CI); run with ``pytest -m gpu`` where one is present.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from potts_gwg.cli.main import main

from potts_gwg.ebm.data import DIGITS_PATH
from potts_gwg.ebm.modelfile import load_model_file

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SMALL = ["--steps", "5", "--batch-size", "50", "--buffer-size", "100", "--device", "cuda",
         "--no-progress"]


def invoke(*arguments):
    return CliRunner().invoke(main, ["ebm", *map(str, arguments)])


@pytest.mark.parametrize("energy, sampler", [("mlp", "gwg"), ("resnet", "gwg"),
                                             ("rbm", "gibbs")])
def test_train_sample_and_ais_run_on_the_gpu(energy, sampler, tmp_path):
    model = tmp_path / "model.npz"
    result = invoke("train", DIGITS_PATH, "--energy", energy, "--sampler", sampler,
                    "--iterations", "20", "--seed", "1", *SMALL, "-o", model)
    assert result.exit_code == 0, result.output
    saved = load_model_file(model)
    assert saved.meta["iterations"] == 20
    assert all(np.isfinite(array).all() for array in saved.arrays.values()
               if array.dtype.kind == "f")

    samples = tmp_path / "samples.npz"
    result = invoke("sample", model, "-n", "16", "--steps", "50", "--seed", "2", "--device",
                    "cuda", "--no-progress", "-o", samples)
    assert result.exit_code == 0, result.output
    with np.load(samples, allow_pickle=False) as archive:
        assert archive["samples"].shape == (16, 64)

    report = tmp_path / "report.json"
    result = invoke("eval", model, "--data", DIGITS_PATH, "--temperatures", "200", "--chains",
                    "32", "--seed", "3", "--device", "cuda", "--no-progress", "-o", report)
    assert result.exit_code == 0, result.output
    nats = json.loads(report.read_text())["log_likelihood_nats"]
    # 20 small updates from the base (-24.7 nats) stay near it
    assert -35 < nats < -15


def test_joint_toy_trains_and_predicts_on_the_gpu(tmp_path):
    data, model = tmp_path / "toy.npz", tmp_path / "joint.npz"
    assert invoke("joint", "toy", "-o", data, "-n", "400", "--seed", "1").exit_code == 0
    result = invoke("joint", "train", data, "-o", model, "--iterations", "30", "--batch-size",
                    "50", "--sampler-steps", "2", "--buffer-size", "100", "--seed", "2",
                    "--device", "cuda")
    assert result.exit_code == 0, result.output
    predictions = tmp_path / "predicted.npz"
    for method in ("exact", "sample"):
        result = invoke("joint", "predict", model, data, "--method", method, "--steps", "2",
                        "-o", predictions, "--device", "cuda", "--seed", "4")
        assert result.exit_code == 0, result.output
        with np.load(predictions, allow_pickle=False) as archive:
            assert archive["y"].shape == (400, 3)
