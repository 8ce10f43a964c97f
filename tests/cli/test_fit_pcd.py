"""`potts-gwg fit --method gwg|gibbs`: model files, refusals, resume after SIGKILL, progress
(the pipeline underneath: tests/test_pipeline.py)."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from potts_gwg.cli.main import main

from potts_gwg.fit.checkpoint import checkpoint_path
from potts_gwg.io.model_file import load_model

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_MSA = REPO_ROOT / "data" / "PF00018_2O9S" / "PF00018_2O9S.fasta"
SMALL = ["--init", "independent", "--chains", "64", "--steps", "3", "--device", "cpu",
         "--threads", "1", "--quiet"]


def run(*arguments):
    return CliRunner().invoke(main, [str(argument) for argument in arguments])


@pytest.mark.parametrize("method", ["gwg", "gibbs"])
def test_fit_writes_a_model_whose_meta_says_how(tmp_path, method):
    output = tmp_path / "sh3.npz"
    result = run("fit", EXAMPLE_MSA, "-o", output, "--method", method, "--seed", "4",
                 "--max-iterations", "6", *SMALL)
    assert result.exit_code == 0, result.output
    assert f"fit {method}:" in result.stdout and "6 updates (stopped at --max-iterations)" \
        in result.stdout
    model = load_model(output)
    meta = model.meta
    assert meta["method"] == method and meta["seed"] == 4 and meta["init"] == "independent"
    assert meta["hyperparameters"]["sampler"] == method
    assert meta["hyperparameters"]["n_chains"] == 64 and meta["iterations"] == 6
    assert 0.0 < meta["pearson_sites"] <= 1.0 and not checkpoint_path(output).exists()
    assert run("contacts", output, "-o", tmp_path / "c.tsv").exit_code == 0


def checkpoint_iteration(path: Path) -> int:
    """The update a checkpoint was written at (-1 while none can be read)."""
    try:
        with np.load(path) as arrays:
            return int(json.loads(str(arrays["meta"]))["iteration"])
    except (OSError, KeyError, ValueError):
        return -1


def test_resume_after_sigkill_ends_identical(tmp_path):
    """The killed run has no update limit, so it is always killed part way (after its
    checkpoint of update 5 or later); resumed with the reference's limit (120 updates, well
    beyond where the kill lands), it must end byte-identical to the reference."""
    command = [sys.executable, "-m", "potts_gwg", "fit", str(EXAMPLE_MSA), "--method", "gibbs",
               "--seed", "9", "--checkpoint-interval", "0.01", *SMALL]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference.npz"
    subprocess.run([*command, "--max-iterations", "120", "-o", str(reference)], check=True,
                   env=environment)
    output = tmp_path / "killed.npz"
    process = subprocess.Popen([*command, "--max-iterations", "1000000", "-o", str(output)],
                               env=environment)
    deadline = time.monotonic() + 120
    while checkpoint_iteration(checkpoint_path(output)) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = checkpoint_iteration(checkpoint_path(output))
    assert 5 <= killed_at < 120 and not output.exists(), killed_at
    finished = subprocess.run([*command, "--max-iterations", "120", "-o", str(output),
                               "--resume"], env=environment, capture_output=True, text=True,
                              check=False)
    assert finished.returncode == 0, finished.stderr
    first, second = load_model(reference), load_model(output)
    assert np.array_equal(first.h, second.h) and np.array_equal(first.J, second.J)
    assert second.meta["iterations"] == 120
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_quiet_ctrl_c_still_says_how_to_continue(tmp_path):
    """-q drops progress, not the outcome: an interrupted fit says that its checkpoint holds
    the last update and that --resume continues (it said only "error: interrupted")."""
    output = tmp_path / "cut.npz"
    command = [sys.executable, "-c", "import signal; signal.signal(signal.SIGINT, "
               "signal.default_int_handler); from potts_gwg.cli.entry import run; run()",
               "fit", str(EXAMPLE_MSA), "--method", "gwg", "--seed", "3", "--max-iterations",
               "1000000", "--max-time", "120", "--checkpoint-interval", "0.001", "-o",
               str(output), *SMALL]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while checkpoint_iteration(checkpoint_path(output)) < 1:  # PCD runs: updates saved
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 130
    finally:
        process.kill()
        process.wait()
    lines = process.stderr.read().splitlines()
    process.stderr.close()
    assert len(lines) == 2 and lines[1] == "error: interrupted", lines
    assert re.fullmatch(r"interrupted after update \d+: .*cut\.checkpoint\.npz holds it; the "
                        r"same command with --resume continues", lines[0]), lines


@pytest.mark.parametrize("signum, repeats, exit_code, last_line", [
    (signal.SIGINT, 1, 130, "error: interrupted"),
    # A closed terminal: the shell and the kernel each send SIGHUP, at once.
    (signal.SIGHUP, 2, 129, "error: terminated (SIGHUP)"),
])
def test_ctrl_c_saves_a_checkpoint_that_resume_continues(tmp_path, signum, repeats, exit_code,
                                                         last_line):
    """With the default interval (300 s) no periodic checkpoint comes in a short run; Ctrl-C
    (or a hang-up) still leaves one, of the last whole update, and exit 130 (129) with no model
    file. (--max-time bounds a child that would ignore the signal: the test then fails, it does
    not hang.)"""
    output = tmp_path / "cut.npz"
    command = [sys.executable, "-c", "import signal; signal.signal(signal.SIGINT, "
               "signal.default_int_handler); from potts_gwg.cli.entry import run; run()",
               "fit", str(EXAMPLE_MSA), "--method", "gwg", "--seed", "3", "--max-iterations",
               "1000000", "--max-time", "120", "-o", str(output), *SMALL[:-1]]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stderr],
                              daemon=True)
    reader.start()
    try:
        seen = []
        while not any(line.startswith("gwg iteration") for line in seen):  # PCD is running
            seen.append(lines.get(timeout=120))
        process.send_signal(signum)
        if repeats == 2:  # the second once the first is held (sent at once, they may merge)
            while not any("stopping after this update" in line for line in seen):
                seen.append(lines.get(timeout=120))
            process.send_signal(signum)
        assert process.wait(timeout=120) == exit_code, "".join(seen)
    finally:
        process.kill()
        process.wait()
    reader.join(timeout=30)                            # to the end of stderr
    while not lines.empty():
        seen.append(lines.get())
    rest = "".join(seen)
    name = signal.Signals(signum).name
    assert f"{name}: stopping after this update to save a checkpoint" in rest
    assert re.search(r"interrupted after update \d+: .*cut\.checkpoint\.npz holds it", rest)
    assert rest.rstrip().endswith(last_line) and "Traceback" not in rest
    assert checkpoint_iteration(checkpoint_path(output)) >= 1 and not output.exists()
    resumed = run("fit", EXAMPLE_MSA, "--method", "gwg", "--seed", "3", "--max-iterations",
                  checkpoint_iteration(checkpoint_path(output)) + 2, "--max-time", "120", "-o",
                  output, "--resume", *SMALL)
    assert resumed.exit_code == 0, resumed.output
    assert not checkpoint_path(output).exists() and output.exists()


def test_a_fresh_fit_does_not_replace_an_unfinished_ones_checkpoint(tmp_path, single_thread,
                                                                     interrupted_pcd_fit):
    output = tmp_path / "cut.npz"
    interrupted_pcd_fit(output, at_iteration=3)
    before = checkpoint_path(output).read_bytes()
    result = run("fit", EXAMPLE_MSA, "-o", output, "--method", "gwg", "--max-iterations", "5",
                 *SMALL)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "cut.checkpoint.npz: holds an earlier gwg/gibbs fit to this output, not finished: " \
           "continue it with --resume, or delete it" in result.stderr
    assert checkpoint_path(output).read_bytes() == before and not output.exists()
    # nor does a plm fit, whose model would sit beside another fit's checkpoint
    result = run("fit", EXAMPLE_MSA, "-o", output, "--max-iterations", "2")
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("not finished: continue it with --method gwg|gibbs "
                                          "--resume, or delete it before a plm fit to this "
                                          "output")
    assert checkpoint_path(output).read_bytes() == before and not output.exists()


def test_resume_with_other_settings_is_refused_clearly(tmp_path, single_thread,
                                                       interrupted_pcd_fit):
    output = tmp_path / "cut.npz"
    interrupted_pcd_fit(output, at_iteration=3)
    result = run("fit", EXAMPLE_MSA, "-o", output, "--method", "gwg", "--seed", "2",
                 "--max-iterations", "12", "--resume", *SMALL[:2], "--chains", "128",
                 *SMALL[4:])
    assert result.exit_code == 2
    assert "checkpoint settings differ" in result.stderr and "n_chains 64 -> 128" \
        in result.stderr
    assert "Traceback" not in result.output and not output.exists()


def test_help_explains_the_ml_options():
    result = run("fit", "--help")
    for option in ("--method", "--init", "--chains", "--steps", "--learning-rate",
                   "--lambda-group", "--target-pearson", "--max-time",
                   "--checkpoint-interval", "--resume"):
        assert option in result.output


def test_init_from_a_model_file(tmp_path, example_model):
    output = tmp_path / "ml.npz"
    result = run("fit", EXAMPLE_MSA, "-o", output, "--method", "gwg", "--max-iterations", "3",
                 *SMALL[2:], "--init", example_model)
    assert result.exit_code == 0, result.output
    meta = load_model(output).meta
    assert meta["init"] == str(example_model) and meta["init_method"] == "plm"


def test_init_from_a_model_of_other_columns_is_refused(tmp_path):
    from potts_gwg.io.model_file import PottsModel, save_model

    other = tmp_path / "other.npz"
    save_model(other, PottsModel(h=np.zeros((5, 21), np.float32),
                                 J=np.zeros((5, 5, 21, 21), np.float32),
                                 alphabet="ACDEFGHIKLMNPQRSTVWY-"))
    output = tmp_path / "ml.npz"
    result = run("fit", EXAMPLE_MSA, "-o", output, "--method", "gwg", *SMALL[2:],
                 "--init", other)
    assert result.exit_code == 2 and "L=5" in result.stderr and "L=48" in result.stderr
    assert not output.exists()


def test_init_that_is_neither_a_start_nor_a_model_file_is_named(tmp_path):
    output = tmp_path / "ml.npz"
    for start, what in ((EXAMPLE_MSA, "not a model file (an .npz written by potts-gwg fit)"),
                        ("zero", "unknown start")):
        result = run("fit", EXAMPLE_MSA, "-o", output, "--method", "gwg", *SMALL[2:],
                     "--init", start)
        assert result.exit_code == 2
        assert result.stderr == (f"error: --init {start}: {what} (available: plm, "
                                 "independent, or a model file MODEL.npz)\n")
    assert not output.exists()


def test_ml_options_with_a_plm_fit_are_refused(tmp_path):
    output = tmp_path / "m.npz"
    result = run("fit", EXAMPLE_MSA, "-o", output, "--chains", "5", "--max-time", "3",
                 "--threads", "1")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--chains, --max-time: only for --method gwg or gibbs" in result.stderr
    assert not output.exists()


def test_the_default_start_is_the_plm_fit_and_progress_is_shown(tmp_path, example_model):
    """`--init plm` (the default) starts from the model `fit --method plm` writes: after one
    update of step 1e-9 the couplings are still those (to float32 rounding). Without --quiet
    the PLM start and the updates are reported on stderr."""
    output = tmp_path / "gwg.npz"
    result = run("fit", EXAMPLE_MSA, "-o", output, "--method", "gwg", "--max-iterations", "1",
                 "--learning-rate", "1e-9", "--chains", "16", "--steps", "2", "--device", "cpu",
                 "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "start: PLM fit" in result.stderr and "plm iteration" in result.stderr
    assert re.search(r"gwg iteration +1 +pearson C - +pearson f1 - +log10 acceptance -?\d",
                     result.stderr), result.stderr
    fitted, plm = load_model(output), load_model(example_model)
    assert fitted.meta["init"] == "plm" and fitted.meta["hyperparameters"]["steps"] == 2
    np.testing.assert_allclose(fitted.J, plm.J, atol=1e-5)
    assert np.abs(plm.J).max() > 0.1  # a PLM model, not zeros


def test_divergence_is_exit_5_with_one_line_and_no_model(tmp_path):
    output = tmp_path / "m.npz"
    result = run("fit", EXAMPLE_MSA, "-o", output, "--method", "gwg", "--learning-rate",
                 "1e38", "--max-iterations", "20", *SMALL)
    assert result.exit_code == 5 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert "non-finite" in result.stderr and "--learning-rate" in result.stderr
    assert not output.exists()
