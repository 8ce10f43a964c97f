"""The whole-batch runner: two real batch processes on one output folder, a SIGKILLed run's
lock, family folders that would lead outside the output folder, and a shard's closing
summary."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from potts_gwg.cli.main import main

from potts_gwg.batch import BatchOptions, RunSettings, batch_lock, run_batch
from potts_gwg.errors import InputError, ResourceError
from potts_gwg.fit.plm import PlmSettings

EXAMPLE_MSA = Path(__file__).resolve().parents[2] / "data" / "PF00018_2O9S" / "PF00018_2O9S.fasta"
LOCAL_CPU = ["--devices", "cpu", "--workers", "1", "--threads", "1"]


def write_manifest(folder: Path, ids=("sh3",)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.tsv"
    manifest.write_text("id\tmsa\n" + "".join(f"{name}\t{EXAMPLE_MSA}\n" for name in ids))
    return manifest


def batch_command(manifest: Path, outdir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "potts_gwg", "batch", str(manifest), "-o", str(outdir),
            "--quiet", *LOCAL_CPU, *extra]


def test_two_batch_processes_on_one_folder_and_a_killed_holder(tmp_path):
    manifest = write_manifest(tmp_path / "input")
    outdir = tmp_path / "out"
    # The first run would fit for minutes (no convergence test). Once it holds the lock, its
    # process group (the batch and its worker) is stopped, so that it does not compete for
    # the CPU while the second run starts; at the end the batch process is SIGKILLed.
    first = subprocess.Popen(batch_command(manifest, outdir, "--max-iterations", "100000",
                                           "--tolerance", "0"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    try:
        lock = outdir / ".lock"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and first.poll() is None and \
                not (lock.exists() and lock.read_text().startswith(f"pid {first.pid} ")):
            time.sleep(0.02)
        os.killpg(first.pid, signal.SIGSTOP)
        assert first.poll() is None, first.stderr.read()
        holder = lock.read_text().strip()
        assert re.fullmatch(rf"pid {first.pid} on \S+, started \d{{4}}-\d\d-\d\dT[0-9:]+\+00:00",
                            holder), holder

        second = subprocess.run(batch_command(manifest, outdir, "--max-iterations", "2"),
                                capture_output=True, text=True, timeout=120, check=False,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert second.returncode == 3, second.stderr  # ResourceError: the folder is busy
        assert second.stderr == f"error: {outdir.resolve()} is in use by another batch run " \
            f"({holder}); wait for it to finish or choose another -o\n"
        assert lock.read_text().strip() == holder  # the refused run changed nothing
        assert not (outdir / "batch.json").exists()
    finally:
        first.kill()  # SIGKILL the batch process only; its worker dies with it
        first.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGCONT)
    # The kernel dropped the dead run's lock with its open files: the next run takes the
    # folder, although the lock file still names the dead process. "Next" is a moment later:
    # the stop may have caught the batch spawning its worker, whose child holds a copy of
    # the lock until it execs (close-on-exec), which it does only after the SIGCONT above.
    assert lock.read_text().strip() == holder
    deadline = time.monotonic() + 30
    while True:
        try:
            with batch_lock(outdir.resolve(), None):
                assert lock.read_text().startswith(f"pid {os.getpid()} ")
            break
        except ResourceError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def settings() -> RunSettings:
    return RunSettings(plm=PlmSettings(max_iterations=2))


@pytest.mark.parametrize("kind", ["symlink out", "symlink in", "file"])
def test_family_folder_that_is_not_a_real_folder_is_refused(tmp_path, kind):
    manifest = write_manifest(tmp_path / "input", ids=("a", "sh3"))
    outdir = tmp_path / "out"
    outdir.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    if kind == "symlink out":
        (outdir / "sh3").symlink_to(outside)
    elif kind == "symlink in":  # would make two families share one folder
        (outdir / "a").mkdir()
        (outdir / "sh3").symlink_to(outdir / "a")
    else:
        (outdir / "sh3").write_text("not a folder")
    with pytest.raises(InputError) as caught:
        run_batch(manifest, outdir, settings(), BatchOptions(devices="cpu", progress=False))
    message = str(caught.value)
    assert message.startswith(f"{manifest}, line 3: family sh3: "), message
    assert ("symbolic link" if kind.startswith("symlink") else "is a file") in message
    assert list(outside.iterdir()) == []
    assert not (outdir / "summary.tsv").exists() and not (outdir / "a" / "model.npz").exists()


def test_cli_refuses_a_symlinked_family_folder_with_one_line(tmp_path):
    manifest = write_manifest(tmp_path / "input")
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "sh3").symlink_to(tmp_path)
    result = CliRunner().invoke(main, ["batch", str(manifest), "-o", str(outdir), *LOCAL_CPU])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {manifest}, line 2: family sh3: the output folder ")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output


def test_devices_auto_without_a_gpu_says_it_runs_on_the_cpu(tmp_path, monkeypatch):
    """As `fit --device auto`: the fallback is announced, not silent (no run needed: the
    family folder is refused after the devices are planned)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    manifest = write_manifest(tmp_path / "input")
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "sh3").write_text("not a folder")
    messages = []
    with pytest.raises(InputError, match="is a file"):
        run_batch(manifest, outdir, settings(), BatchOptions(devices="auto", progress=False),
                  announce=messages.append)
    assert "devices: auto -> cpu (no CUDA GPU found; running on the CPU)" in messages


def test_final_summary_of_a_shard_includes_a_shard_that_finished_meanwhile(tmp_path,
                                                                          monkeypatch):
    """Shard 2/2 runs start to end while shard 1/2 fits: shard 1's closing summary, written
    last, must show shard 2's families done, not "pending" as they were when it started."""
    import pandas as pd

    from potts_gwg.batch import runner

    manifest = write_manifest(tmp_path / "input", ids=("a", "b", "c"))
    outdir = tmp_path / "out"
    original_run_local = runner.run_local
    other_shard = {}

    def run_local_after_the_other_shard(*arguments, **keywords):
        if not other_shard:  # the first call is shard 1's; shard 2's own call runs as usual
            other_shard["started"] = True
            other_shard["result"] = run_batch(manifest, outdir, settings(), BatchOptions(
                devices="cpu", workers=1, threads=1, shard=(2, 2), progress=False))
        return original_run_local(*arguments, **keywords)

    monkeypatch.setattr(runner, "run_local", run_local_after_the_other_shard)
    first = run_batch(manifest, outdir, settings(), BatchOptions(
        devices="cpu", workers=1, threads=1, shard=(1, 2), progress=False))
    assert other_shard["result"].ran == ["b"] and first.ran == ["a", "c"]
    table = pd.read_csv(outdir / "summary.tsv", sep="\t")
    assert list(table["id"]) == ["a", "b", "c"] and list(table["status"]) == ["done"] * 3
    assert [record["status"] for record in first.records] == ["done"] * 3


def test_a_script_without_a_main_guard_is_told_why_its_workers_died(tmp_path):
    """Spawned workers import the caller's script again, which then starts another batch:
    the family's message names the cause instead of only 'BrokenProcessPool'."""
    manifest = write_manifest(tmp_path / "input")
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from potts_gwg.batch import BatchOptions, RunSettings, run_batch\n"
        "from potts_gwg.fit.plm import PlmSettings\n"
        f"result = run_batch({str(manifest)!r}, {str(tmp_path / 'out')!r}, "
        "RunSettings(plm=PlmSettings(max_iterations=2)), BatchOptions(devices='cpu', "
        "workers=1, threads=1, progress=False))\n"
        "print(result.records[0]['message'])\n")
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                               timeout=120, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "call run_batch under 'if __name__ == \"__main__\":'" in completed.stdout


def test_run_family_in_process_leaves_the_thread_count_as_it_was(tmp_path):
    import torch

    from potts_gwg.batch import FamilyTask, read_families, run_family, settings_hash

    manifest = write_manifest(tmp_path / "input")
    family = read_families(manifest)[0]
    before = torch.get_num_threads()
    task = FamilyTask(family=family, outdir=str(tmp_path / "out"), settings=settings(),
                      settings_hash=settings_hash(family, settings()), device="cpu",
                      threads=1 if before != 1 else 2)
    assert run_family(task)["status"] == "done"
    assert torch.get_num_threads() == before


def test_scheduling_notes_come_before_the_progress_and_a_rerun_redraws_nothing(tmp_path,
                                                                              monkeypatch):
    """With two workers the parent reads the alignments to run the largest first: it says so
    before the per-family lines (which once drew over it). A rerun with nothing to do leaves
    summary.png alone (redrawing it cost seconds)."""
    from potts_gwg.batch import summary

    manifest = write_manifest(tmp_path / "input", ids=("a", "b"))
    outdir = tmp_path / "out"
    options = BatchOptions(devices="cpu", workers=2, threads=1, progress=True)
    messages = []
    run_batch(manifest, outdir, settings(), options, announce=messages.append)
    reading = messages.index("reading the 2 alignments to run the largest first")
    first_family = next(index for index, line in enumerate(messages) if line.startswith("[1/2]"))
    assert reading < first_family, messages
    drawn = []
    draw = summary.summary_png
    monkeypatch.setattr(summary, "summary_png",
                        lambda *arguments: drawn.append(arguments) or draw(*arguments))
    run_batch(manifest, outdir, settings(), options)  # both finished: the table flags them
    assert len(drawn) == 1                            # resumed, so it is drawn once more
    run_batch(manifest, outdir, settings(), options)
    assert len(drawn) == 1 and (outdir / "summary.png").is_file()


def test_a_family_finished_before_the_seed_column_gets_the_run_s_seed(tmp_path):
    """done.json files written before results recorded their seed: the settings hash they
    match pins the seed, so the summary shows it rather than a blank."""
    import json

    manifest = write_manifest(tmp_path / "input")
    outdir = tmp_path / "out"
    seeded = RunSettings(seed=5, plm=PlmSettings(max_iterations=2))
    options = BatchOptions(devices="cpu", workers=1, threads=1, progress=False)
    run_batch(manifest, outdir, seeded, options)
    marker = outdir / "sh3" / "done.json"
    done = json.loads(marker.read_text())
    del done["result"]["seed"]
    marker.write_text(json.dumps(done))
    result = run_batch(manifest, outdir, seeded, options)
    assert result.skipped == ["sh3"] and result.records[0]["seed"] == 5


def test_another_shard_s_family_finished_before_the_seed_column_gets_the_run_s_seed(tmp_path):
    """The same for a family that another shard finished: shard 1/2 reads shard 2/2's
    done.json for its closing summary, and the settings it checks there pin the seed."""
    import json

    import pandas as pd

    manifest = write_manifest(tmp_path / "input", ids=("a", "b"))
    outdir = tmp_path / "out"
    seeded = RunSettings(seed=5, plm=PlmSettings(max_iterations=2))

    def shard(number: int):
        return run_batch(manifest, outdir, seeded, BatchOptions(
            devices="cpu", workers=1, threads=1, shard=(number, 2), progress=False))

    assert shard(2).ran == ["b"]
    marker = outdir / "b" / "done.json"
    done = json.loads(marker.read_text())
    del done["result"]["seed"]
    marker.write_text(json.dumps(done))
    first = shard(1)
    assert first.ran == ["a"] and [record["seed"] for record in first.records] == [5, 5]
    assert list(pd.read_csv(outdir / "summary.tsv", sep="\t")["seed"]) == [5, 5]


def test_a_family_resumed_as_done_drops_the_failure_of_a_run_with_other_settings(tmp_path,
                                                                                  monkeypatch):
    """Done with settings A, then failed with settings B (error.json, B's log), then run with
    A again: skipped as done, and the folder no longer says failed."""
    manifest = write_manifest(tmp_path / "input")
    outdir = tmp_path / "out"
    options = BatchOptions(devices="cpu", workers=1, threads=1, progress=False)
    run_batch(manifest, outdir, settings(), options)
    failing = RunSettings(plm=PlmSettings(max_iterations=3), max_memory=1024)
    assert run_batch(manifest, outdir, failing, options).records[0]["status"] == "failed"
    folder = outdir / "sh3"
    assert (folder / "error.json").is_file()
    result = run_batch(manifest, outdir, settings(), options)
    assert result.skipped == ["sh3"] and result.records[0]["status"] == "done"
    assert not (folder / "error.json").exists() and (folder / "done.json").is_file()
    log = (folder / "log.txt").read_text()
    assert "failed: ResourceError" in log
    assert log.rstrip().endswith("a later run with other settings failed, and its error.json "
                                 "is removed (its log, as far as it got, is above)")
    # A folder that cannot be tidied (here: error.json cannot be removed) leaves the family
    # done and the batch going, with a note.
    assert run_batch(manifest, outdir, failing, options).records[0]["status"] == "failed"
    unlink = Path.unlink

    def refuse_error_json(path, *arguments, **options):
        if path.name == "error.json":
            raise PermissionError(13, "Permission denied", str(path))
        return unlink(path, *arguments, **options)

    monkeypatch.setattr(Path, "unlink", refuse_error_json)
    notes = []
    result = run_batch(manifest, outdir, settings(), options, announce=notes.append)
    assert result.skipped == ["sh3"] and result.records[0]["status"] == "done"
    assert f"note: {folder}: could not remove a later failed run's error.json ([Errno 13] " \
        f"Permission denied: '{folder / 'error.json'}')" in notes
