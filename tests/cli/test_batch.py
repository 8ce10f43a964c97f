"""`potts-gwg batch` end to end: small real families and a broken one, resume after SIGKILL,
the Ray executor, the lock. Fits are cut short (--max-iterations) to keep this quick."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from potts_gwg.batch import batch_lock
from potts_gwg.cli.main import main
from potts_gwg.io.model_file import load_model

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "data" / "PF00018_2O9S"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SHARED_FAMILIES = ("1guuA", "1atzA", "PF00018_2O9S")  # L = 50, 75, 48: fits of seconds
FAST = ["--max-iterations", "8", "--threads", "1", "--devices", "cpu"]
COMPARED = ["id", "status", "L", "N", "Neff", "method", "device", "iterations", "exit_code",
            "reason", "message", "top_L_sep6", "top_L2_sep6", "top_L5_sep6", "top_L_sep12",
            "top_L_sep24"]


def run(*arguments):
    return CliRunner().invoke(main, [str(argument) for argument in arguments])


def make_manifest(folder: Path) -> tuple[Path, dict[str, int]]:
    """The shipped SH3 example, then, when ../shared/data is there, three of its families
    exactly as its manifest gives them (files under families/<id>/), then a broken MSA.

    Returns the manifest and the expected L of the good families.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "broken.fasta").write_text(">q\nACDEFG\n>b\nAC1EFG\n")
    columns = ["id", "msa_file", "msa_format", "query", "structure_file", "chain"]
    rows = [["sh3", str(EXAMPLE / "PF00018_2O9S.fasta"), "fasta", "first",
             str(EXAMPLE / "2O9S_A.pdb"), "A"]]
    lengths = {"sh3": 48}
    if (SHARED_DATA / "manifest.tsv").exists():
        (folder / "families").symlink_to(SHARED_DATA / "families")
        with open(SHARED_DATA / "manifest.tsv", newline="") as stream:
            shared = {row["id"]: row for row in csv.DictReader(stream, delimiter="\t")}
        for family in SHARED_FAMILIES:
            rows.append([shared[family][column] for column in columns])
            lengths[family] = int(shared[family]["length"])
    rows.append(["broken", "broken.fasta", "", "first", "", "(blank)"])
    manifest = folder / "manifest.tsv"
    manifest.write_text("\n".join("\t".join(row) for row in [columns] + rows) + "\n")
    return manifest, lengths


@pytest.fixture(scope="module")
def local_batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("local")
    manifest, lengths = make_manifest(folder / "input")
    outdir = folder / "out"
    result = run("batch", manifest, "-o", outdir, "--workers", "2", *FAST)
    return manifest, lengths, outdir, result


def summary(outdir: Path) -> pd.DataFrame:
    return pd.read_csv(outdir / "summary.tsv", sep="\t")


def test_batch_writes_every_family_and_reports_the_broken_one(local_batch):
    manifest, lengths, outdir, result = local_batch
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "1 of" in errors[0] and "(broken)" in errors[0]
    assert "Traceback" not in result.output
    table = summary(outdir).set_index("id")
    assert list(table.index) == [*lengths, "broken"]
    broken = table.loc["broken"]
    assert (broken["status"], broken["exit_code"], broken["reason"]) == ("failed", 2, "InputError")
    assert "broken.fasta" in broken["message"]
    good = table.drop(index="broken")
    assert (good["status"] == "done").all()
    assert good["L"].to_dict() == lengths
    assert (good["N"] > 100).all() and (good["Neff"] > 10).all()
    assert (good["method"] == "plm").all() and (good["wall_s"] > 0).all()
    assert (good["peak_memory_bytes"] > 0).all() and (good["iterations"] <= 8).all()
    for column in ("top_L_sep6", "top_L5_sep6", "top_L_sep24"):
        assert good[column].between(0, 1).all()
    assert good.loc["sh3", "top_L5_sep6"] >= 0.5  # SH3 contacts are easy even after 8 steps
    records = json.loads((outdir / "summary.json").read_text())
    assert [record["id"] for record in records] == list(table.index)
    assert (outdir / "summary.png").stat().st_size > 1000
    for family in good.index:
        folder = outdir / family
        assert {"model.npz", "contacts.tsv", "evaluation.json", "settings.json", "log.txt",
                "done.json"} <= {path.name for path in folder.iterdir()}
    assert (outdir / "broken" / "error.json").exists()
    batch = json.loads((outdir / "batch.json").read_text())
    assert batch["failed"] == ["broken"] and batch["done"] == len(lengths)
    assert [slot["device"] for slot in batch["slots"]] == ["cpu", "cpu"]


def test_rerun_skips_finished_families_and_retries_failed_ones(local_batch):
    manifest, lengths, outdir, _ = local_batch
    before = {path: path.stat().st_mtime_ns for family in lengths
              for path in (outdir / family).iterdir()}
    result = run("batch", manifest, "-o", outdir, *FAST)
    assert result.exit_code == 1
    assert f"{len(lengths)} finished earlier with the same settings (skipped), 1 to run" \
        in result.stderr
    assert {path: path.stat().st_mtime_ns for path in before} == before
    assert json.loads((outdir / "batch.json").read_text())["ran"] == ["broken"]


def test_ctrl_c_to_the_terminals_process_group_is_one_line(tmp_path):
    """Ctrl-C reaches the batch and its workers; the batch kills them and says so in one line
    (a killed worker's tqdm semaphore made the resource tracker warn after it)."""
    manifest, _ = make_manifest(tmp_path / "input")
    outdir = tmp_path / "out"
    command = [sys.executable, "-c", "import signal; signal.signal(signal.SIGINT, "
               "signal.default_int_handler); from potts_gwg.cli.entry import run; run()",
               "batch", str(manifest), "-o", str(outdir), "--workers", "1", *FAST]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (outdir / "sh3" / "done.json").exists() and process.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, "the batch ended before the Ctrl-C"
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)   # the batch and any worker left
        process.wait()
    assert process.returncode == 130, stderr
    assert stderr.rstrip().splitlines()[-1] == "error: interrupted", stderr
    assert "Warning" not in stderr and "Traceback" not in stderr


def test_kill_part_way_then_resume(tmp_path):
    manifest, lengths = make_manifest(tmp_path / "input")
    outdir = tmp_path / "out"
    command = [sys.executable, "-c", "from potts_gwg.cli.main import main; main()", "batch",
               str(manifest), "-o", str(outdir), "--workers", "1", *FAST]
    with open(tmp_path / "stderr", "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 120
        first = outdir / "sh3" / "done.json"
        while not first.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.exists(), (tmp_path / "stderr").read_text()
        time.sleep(0.3)  # into the next family (1guuA takes seconds)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished = {path: path.stat().st_mtime_ns for family in lengths
                if (outdir / family / "done.json").exists()
                for path in (outdir / family).iterdir()}
    # A running family works in OUTDIR/<id>/.run/ until it has succeeded.
    interrupted = [family for family in lengths
                   if (outdir / family / ".run" / "log.txt").exists()
                   and not (outdir / family / "done.json").exists()]
    if len(lengths) > 1:
        assert interrupted, "the batch finished before it was killed"
    worker_pids = [int(line.split("pid ")[1].split()[0])
                   for family in interrupted
                   for line in (outdir / family / ".run" / "log.txt").read_text()
                   .splitlines()[:1]]

    result = run("batch", manifest, "-o", outdir, *FAST)
    assert result.exit_code == 1, result.output  # the broken family fails again
    table = summary(outdir).set_index("id")
    assert (table.drop(index="broken")["status"] == "done").all()
    assert {path: path.stat().st_mtime_ns for path in finished} == finished
    assert "sh3" not in json.loads((outdir / "batch.json").read_text())["ran"]
    assert not [path for path in outdir.rglob("*") if path.name.endswith(".tmp")]
    assert not list(outdir.glob("*/.run"))
    for family in lengths:
        assert load_model(outdir / family / "model.npz").length == lengths[family]
        assert json.loads((outdir / family / "done.json").read_text())["result"]["status"] == "done"
    for pid in worker_pids:  # the worker died with the batch (no orphan finishing its family)
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_ray_executor_gives_the_same_summary(local_batch, tmp_path):
    """The shipped example and the broken family (a success and a failure; the other
    families only add fitting time) on Ray, against the local run's rows."""
    ray = pytest.importorskip("ray")
    manifest, lengths, local_outdir, _ = local_batch
    rows = manifest.read_text().splitlines()
    subset = manifest.parent / "ray_manifest.tsv"
    subset.write_text("\n".join(row for row in rows
                                if row.split("\t")[0] in ("id", "sh3", "broken")) + "\n")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run("batch", subset, "-o", tmp_path / "ray", "--executor", "ray", *FAST)
    finally:
        ray.shutdown()
    assert result.exit_code == 1, result.output
    assert "ray:" in result.stderr
    ray_table = summary(tmp_path / "ray")[COMPARED]
    local_table = summary(local_outdir)[COMPARED]
    local_table = local_table[local_table["id"].isin(["sh3", "broken"])].reset_index(drop=True)
    assert list(ray_table["id"]) == ["sh3", "broken"]
    pd.testing.assert_frame_equal(ray_table, local_table)


def test_second_batch_on_one_folder_is_refused(tmp_path):
    manifest, _ = make_manifest(tmp_path / "input")
    outdir = tmp_path / "out"
    outdir.mkdir()
    with batch_lock(outdir, None):
        result = run("batch", manifest, "-o", outdir, *FAST)
    assert result.exit_code == 3  # ResourceError: the folder is busy
    assert result.stderr.startswith(f"error: {outdir} is in use by another batch run (pid ")


def test_bad_manifest_is_one_line_error(tmp_path):
    manifest = tmp_path / "m.tsv"
    manifest.write_text("id\tmsa\nx\tmissing.fasta\n")
    result = run("batch", manifest, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr == f"error: {manifest}, line 2: family x: msa file 'missing.fasta' " \
        f"not found (looked for {tmp_path / 'missing.fasta'} and in the family folders)\n"
    assert not (tmp_path / "out").exists()
    assert run("batch", manifest, "-o", tmp_path / "o", "--shard", "3/2").exit_code == 2


def test_gwg_options_with_plm_are_refused_as_fit_refuses_them(tmp_path):
    """They were silently ignored: a plm batch 'with' --chains ran as if they were not given."""
    manifest = tmp_path / "m.tsv"
    manifest.write_text(f"id\tmsa\nsh3\t{EXAMPLE / 'PF00018_2O9S.fasta'}\n")
    result = run("batch", manifest, "-o", tmp_path / "out", "--method", "plm", "--chains", "8",
                 "--target-pearson", "0.5")
    assert result.exit_code == 2
    assert result.stderr == ("error: --chains, --target-pearson: only for --method gwg or "
                             "gibbs (this is a plm fit)\n")
    assert not (tmp_path / "out").exists()
    missing = run("batch", tmp_path / "absent.tsv", "-o", tmp_path / "out")
    assert missing.exit_code == 2 and missing.stderr.count("\n") == 1


def test_shards_together_run_every_family_once(tmp_path):
    ids = [f"sh3_{index}" for index in range(5)]
    manifest = tmp_path / "m.tsv"
    manifest.write_text("id\tmsa\n" + "".join(f"{name}\t{EXAMPLE / 'PF00018_2O9S.fasta'}\n"
                                              for name in ids))
    outdir = tmp_path / "out"
    ran = []
    for shard, workers in (("1/2", "1"), ("2/2", "2")):
        result = run("batch", manifest, "-o", outdir, "--shard", shard, "--max-iterations", "2",
                     "--workers", workers, "--devices", "cpu")
        assert result.exit_code == 0, result.output
        batch = json.loads((outdir / f"batch-shard-{shard.replace('/', '-of-')}.json")
                           .read_text())
        ran.append(batch["ran"])
        if shard == "1/2":  # the summary covers the whole manifest: shard 2 not run yet
            assert list(summary(outdir)["status"]) == ["done", "pending"] * 2 + ["done"]
    assert ran == [ids[0::2], ids[1::2]]
    # Two CPU workers without --threads share the cores by load ("elastic" threads).
    assert "following the load" in (outdir / ids[1] / "log.txt").read_text()
    assert "following the load" not in (outdir / ids[0] / "log.txt").read_text()
    table = summary(outdir)
    assert list(table["id"]) == ids and (table["status"] == "done").all()


def test_batch_fits_by_pcd_with_its_options(tmp_path):
    """--method gwg with the PCD options: the model's meta records them, and they are part of
    the settings a rerun compares (another --chains redoes the family)."""
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text(f"id\tmsa\nsh3\t{EXAMPLE / 'PF00018_2O9S.fasta'}\n")
    outdir = tmp_path / "out"
    pcd = ["--method", "gwg", "--init", "independent", "--chains", "32", "--steps", "2",
           "--max-iterations", "3", "--threads", "1", "--devices", "cpu"]
    result = run("batch", manifest, "-o", outdir, *pcd)
    assert result.exit_code == 0, result.output
    meta = load_model(outdir / "sh3" / "model.npz").meta
    assert meta["method"] == "gwg" and meta["init"] == "independent"
    assert meta["hyperparameters"]["n_chains"] == 32 and meta["iterations"] == 3
    again = run("batch", manifest, "-o", outdir, *pcd[:5], "64", *pcd[6:])
    assert again.exit_code == 0 and "(0 from earlier runs)" in again.stdout
