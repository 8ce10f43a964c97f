"""The per-family task, the done marker, settings hashes, the summary and the batch lock
(in this process: no worker processes)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from potts_gwg.batch import (
    FamilySpec,
    FamilyTask,
    RunSettings,
    batch_lock,
    finished_record,
    run_family,
    settings_hash,
    write_summary,
)
from potts_gwg.batch.task import failed_record, resolved_settings
from potts_gwg.errors import InputError, ResourceError
from potts_gwg.fit.checkpoint import checkpoint_path
from potts_gwg.fit.pcd import PcdSettings
from potts_gwg.fit.plm import PlmSettings
from potts_gwg.io.model_file import load_model

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "data" / "PF00018_2O9S"
SETTINGS = RunSettings(plm=PlmSettings(max_iterations=5))


def example_family(**changes) -> FamilySpec:
    fields = {"id": "sh3", "msa": str(EXAMPLE / "PF00018_2O9S.fasta"),
              "structure": str(EXAMPLE / "2O9S_A.pdb"), "chain": "A"}
    fields.update(changes)
    return FamilySpec(**fields)


def task_for(family: FamilySpec, outdir: Path, settings: RunSettings = SETTINGS) -> FamilyTask:
    return FamilyTask(family=family, settings=settings, outdir=str(outdir),
                      settings_hash=settings_hash(family, settings), device="cpu")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("batch")
    task = task_for(example_family(), outdir)
    return task, run_family(task)


def test_family_outputs_and_done_marker(finished):
    task, record = finished
    folder = Path(task.outdir) / "sh3"
    assert record["status"] == "done", record
    assert (record["L"], record["N"], record["method"], record["seed"]) == (48, 920, "plm", 0)
    assert record["Neff"] > 100 and record["wall_s"] > 0 and record["peak_rss_bytes"] > 0
    names = {path.name for path in folder.iterdir()}
    assert names == {"model.npz", "contacts.tsv", "evaluation.json", "settings.json", "log.txt",
                     "done.json"}
    assert load_model(folder / "model.npz").length == 48
    evaluation = json.loads((folder / "evaluation.json").read_text())
    assert {row["top"] for row in evaluation["precision"]} == {"L", "L/2", "L/5"}
    assert evaluation["structure_mapping"]["identity"] == 1.0
    marker = json.loads((folder / "done.json").read_text())
    assert marker["settings_hash"] == task.settings_hash
    assert set(marker["outputs"]) == names - {"done.json", "log.txt"}  # the log is no result
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["fit"]["max_iterations"] == 5 and settings["inputs"]["chain"] == "A"
    assert "fit plm: N=920 L=48" in (folder / "log.txt").read_text()
    assert finished_record(folder, task.settings_hash)["status"] == "done"
    assert finished_record(folder, "another hash") is None


def test_a_truncated_output_makes_the_family_unfinished(finished, tmp_path):
    task, _ = finished
    source = Path(task.outdir) / "sh3"
    copy = tmp_path / "sh3"
    copy.mkdir()
    for path in source.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    assert finished_record(copy, task.settings_hash) is not None
    (copy / "contacts.tsv").write_text("i\tj\tscore\n")
    assert finished_record(copy, task.settings_hash) is None


def test_settings_hash_follows_inputs_and_settings_not_devices(tmp_path):
    family = example_family()
    base = settings_hash(family, SETTINGS)
    assert settings_hash(family, RunSettings(plm=PlmSettings(max_iterations=5),
                                             max_memory=2**30)) == base
    assert settings_hash(family, RunSettings(plm=PlmSettings(max_iterations=6))) != base
    assert settings_hash(family, RunSettings(plm=PlmSettings(max_iterations=5), seed=1)) != base
    assert settings_hash(example_family(chain=None), SETTINGS) != base
    copy = tmp_path / "copy.fasta"
    copy.write_bytes(Path(family.msa).read_bytes())
    assert settings_hash(example_family(msa=str(copy)), SETTINGS) == base  # paths don't count
    copy.write_bytes(copy.read_bytes() + b">extra\n" + b"A" * 49 + b"\n")
    assert settings_hash(example_family(msa=str(copy)), SETTINGS) != base


def test_a_broken_family_is_a_failed_record_with_error_json(tmp_path):
    broken = tmp_path / "broken.fasta"
    broken.write_text(">a\nAC1DE\n>b\nACDEF\n")
    task = task_for(FamilySpec(id="broken", msa=str(broken)), tmp_path / "out",
                    RunSettings(seed=7))
    record = run_family(task)
    assert record["status"] == "failed" and record["seed"] == 7
    assert record["exit_code"] == 2 and record["reason"] == "InputError"
    assert "broken.fasta" in record["message"]
    folder = tmp_path / "out" / "broken"
    error = json.loads((folder / "error.json").read_text())
    assert error["result"]["message"] == record["message"]
    assert not (folder / "done.json").exists() and not (folder / "model.npz").exists()
    assert "failed: InputError (exit 2)" in (folder / "log.txt").read_text()
    assert not list(folder.glob(".*.tmp"))


def test_a_bug_is_an_internal_failure_with_traceback(tmp_path, monkeypatch):
    import potts_gwg.pipeline

    def explode(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(potts_gwg.pipeline, "fit_stage", explode)
    record = run_family(task_for(example_family(), tmp_path))
    assert (record["status"], record["exit_code"], record["reason"]) == ("failed", 70, "internal")
    assert "ZeroDivisionError: boom" in record["message"]
    assert "Traceback" in (tmp_path / "sh3" / "log.txt").read_text()


def test_rerun_clears_stale_outputs_and_temporary_files(finished, tmp_path):
    _task, _ = finished
    folder = tmp_path / "sh3"
    folder.mkdir()
    (folder / "done.json").write_text("{}")
    (folder / "contact_map.png").write_text("old")
    (folder / ".model.npz.abc.npz.tmp").write_text("partial")
    record = run_family(task_for(example_family(structure=None, chain=None), tmp_path))
    assert record["status"] == "done" and record["precision"] is None
    names = {path.name for path in folder.iterdir()}
    assert names == {"model.npz", "contacts.tsv", "settings.json", "log.txt", "done.json"}


def test_a_failed_rerun_with_other_settings_keeps_the_earlier_results(finished, tmp_path):
    """The run works in .run/ and publishes only on success: a rerun whose settings changed
    and that then fails (here: a memory limit it cannot meet) leaves the finished model,
    contacts and evaluation of the earlier settings where they were."""
    task, _ = finished
    folder = tmp_path / "sh3"
    shutil.copytree(Path(task.outdir) / "sh3", folder)
    kept = {name: (folder / name).read_bytes()
            for name in ("model.npz", "contacts.tsv", "evaluation.json", "done.json")}
    settings = RunSettings(plm=PlmSettings(max_iterations=5), max_memory=1024, seed=7)
    family = example_family()
    rerun = FamilyTask(family=family, settings=settings, outdir=str(tmp_path),
                       settings_hash=settings_hash(family, settings), device="cpu")
    record = run_family(rerun)
    assert record["status"] == "failed" and record["reason"] == "ResourceError"
    assert {name: (folder / name).read_bytes() for name in kept} == kept
    assert json.loads((folder / "error.json").read_text())["settings_hash"] == \
        rerun.settings_hash
    assert "failed: ResourceError" in (folder / "log.txt").read_text()
    assert not (folder / ".run").exists() and not list(folder.glob(".*.tmp"))
    assert failed_record(folder, rerun.settings_hash)["reason"] == "ResourceError"
    # The earlier settings' results are still whole: a run with them finds them finished.
    assert finished_record(folder, task.settings_hash) is not None


def test_a_killed_run_s_checkpoint_is_resumed_only_with_the_same_settings(
        tmp_path, interrupted_pcd_fit, single_thread):
    """A gwg family killed part way leaves .run/ with its checkpoint (seed 2) and settings;
    a rerun with another seed drops that checkpoint and starts afresh instead of failing on
    it (or continuing another seed's chains)."""
    folder = tmp_path / "sh3"
    work = folder / ".run"
    work.mkdir(parents=True)
    interrupted_pcd_fit(work / "model.npz", at_iteration=3)
    (work / "settings.json").write_text(json.dumps({"settings_hash": "of the killed run"}))
    assert checkpoint_path(work / "model.npz").exists()
    settings = RunSettings(method="gwg", seed=7, init="independent",
                           pcd=PcdSettings(n_chains=64, steps=3, max_iterations=12,
                                           target_pearson=None))
    record = run_family(task_for(example_family(), tmp_path, settings))
    assert record["status"] == "done", record.get("message")
    assert load_model(folder / "model.npz").meta["seed"] == 7
    assert not work.exists()


def test_summary_tables_and_picture(finished, tmp_path):
    _, record = finished
    failed = {"id": "broken", "status": "failed", "message": "bad", "reason": "InputError",
              "exit_code": 2}
    pending = {"id": "later", "status": "pending"}
    frame = write_summary(tmp_path, [record, failed, pending])
    assert list(frame["status"]) == ["done", "failed", "pending"]
    assert frame.loc[0, "top_L_sep6"] == next(row["precision"] for row in record["precision"]
                                              if row["top"] == "L" and row["min_separation"] == 6)
    assert frame.loc[0, "peak_memory_bytes"] == record["peak_rss_bytes"]
    rows = json.loads((tmp_path / "summary.json").read_text())
    assert [row["id"] for row in rows] == ["sh3", "broken", "later"]
    assert rows[1]["L"] is None and rows[1]["exit_code"] == 2
    assert rows[0]["seed"] == 0 and rows[1]["seed"] is None  # the seed of the run is recorded
    header = (tmp_path / "summary.tsv").read_text().splitlines()[0].split("\t")
    assert header[:4] == ["id", "status", "L", "N"] and "top_L5_sep24" in header
    assert (tmp_path / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_summary_picture_is_drawn_again_only_for_another_table(finished, tmp_path,
                                                                   monkeypatch):
    from potts_gwg.batch import summary

    _, record = finished
    drawn = []
    draw = summary.summary_png
    monkeypatch.setattr(summary, "summary_png",
                        lambda *arguments: drawn.append(arguments) or draw(*arguments))
    write_summary(tmp_path, [record])
    write_summary(tmp_path, [record])                    # the same table: the same picture
    assert len(drawn) == 1
    other = {**record, "id": "other"}
    write_summary(tmp_path, [record, other], plot=False)  # a table the picture does not show
    write_summary(tmp_path, [record, other])              # (as a shard's summary mid-run)
    assert len(drawn) == 2
    (tmp_path / "summary.png").write_bytes(b"damaged")
    write_summary(tmp_path, [record, other])
    assert len(drawn) == 3 and (tmp_path / "summary.png").read_bytes()[:4] == b"\x89PNG"


def test_a_second_batch_on_the_same_folder_is_refused_naming_the_holder(tmp_path):
    in_use = f"{tmp_path} is in use by another batch run"
    with batch_lock(tmp_path, None):
        holder = (tmp_path / ".lock").read_text()
        assert holder.startswith(f"pid {os.getpid()} on ") and ", started 20" in holder
        with pytest.raises(ResourceError, match=re.escape(f"{in_use} (pid {os.getpid()} on ")), \
                batch_lock(tmp_path, None):
            pass
        with pytest.raises(ResourceError, match=re.escape(in_use)), batch_lock(tmp_path, (1, 2)):
            pass
    with batch_lock(tmp_path, (1, 2)), batch_lock(tmp_path, (2, 2)):  # shards share OUTDIR
        with pytest.raises(ResourceError, match=re.escape(f"{in_use} (shard 1/2: pid ")), \
                batch_lock(tmp_path, (1, 2)):
            pass
        with pytest.raises(ResourceError) as caught, batch_lock(tmp_path, None):
            pass
        assert "(shard 1/2: pid" in str(caught.value) and "; shard 2/2: pid" in str(caught.value)
    with batch_lock(tmp_path, (1, 2)):  # shard 2's file is left behind, not held: not named
        with pytest.raises(ResourceError) as caught, batch_lock(tmp_path, None):
            pass
        assert "shard 1/2" in str(caught.value) and "shard 2/2" not in str(caught.value)
    with batch_lock(tmp_path, None):  # released
        pass


def test_shards_of_another_sharding_are_refused(tmp_path):
    """Shards 1/2 and 1/3 would both work on the first family: while any shard of one count
    runs, a shard of another count is refused (and a finished one's file does not count)."""
    with batch_lock(tmp_path, (1, 2)):
        with pytest.raises(ResourceError, match=r"in use by another batch run \(shard 1/2: "), \
                batch_lock(tmp_path, (1, 3)):
            pass
        with batch_lock(tmp_path, (2, 2)):
            pass
    with batch_lock(tmp_path, (1, 3)):  # the 2-shard batch is over
        assert sorted(path.name for path in tmp_path.glob(".lock-shard-*")) == [
            ".lock-shard-1-of-2", ".lock-shard-1-of-3", ".lock-shard-2-of-2"]


def test_a_lock_file_replaced_by_a_symlink_is_not_followed(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / ".lock").symlink_to(outside)
    with pytest.raises(InputError, match="lock file .lock is a symbolic link"), \
            batch_lock(outdir, None):
        pass
    assert outside.read_text() == "keep me"


def test_out_of_memory_fails_the_family_as_a_resource_error(tmp_path, monkeypatch):
    import torch

    from potts_gwg.device import note_memory_estimate

    def fit_stage(*args, **kwargs):
        note_memory_estimate(5 * 2**30, "a PLM fit of L=48, N=920")
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB.")

    monkeypatch.setattr("potts_gwg.pipeline.fit_stage", fit_stage)
    family = example_family()
    record = run_family(task_for(family, tmp_path))
    assert (record["status"], record["exit_code"], record["reason"]) == \
        ("failed", 3, "ResourceError")
    assert record["message"].startswith("out of memory on the GPU (tried to allocate 1.00 GiB); "
                                        "a PLM fit of L=48, N=920 was estimated to need about "
                                        "5.0 GiB; change: ")
    assert json.loads((tmp_path / "sh3" / "error.json").read_text())["result"]["exit_code"] == 3


def test_a_failed_gwg_family_leaves_no_checkpoint_to_block_new_settings(tmp_path,
                                                                          single_thread):
    """A gwg family whose fit diverges (exit 5) keeps no checkpoint: a rerun with a sane
    learning rate starts afresh instead of refusing the diverged run's settings."""
    pcd = PcdSettings(n_chains=64, steps=3, max_iterations=12, target_pearson=None)
    diverging = RunSettings(method="gwg", init="independent",
                            pcd=dataclasses.replace(pcd, learning_rate=1e38))
    failed = run_family(task_for(example_family(), tmp_path, diverging))
    assert failed["status"] == "failed" and failed["exit_code"] == 5
    assert not (tmp_path / "sh3" / ".run").exists()
    sane = RunSettings(method="gwg", init="independent", pcd=pcd)
    assert run_family(task_for(example_family(), tmp_path, sane))["status"] == "done"


def test_a_symbolic_link_as_run_folder_is_refused(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "model.npz").write_text("keep")
    (tmp_path / "out" / "sh3").mkdir(parents=True)
    (tmp_path / "out" / "sh3" / ".run").symlink_to(victim)
    record = run_family(task_for(example_family(), tmp_path / "out"))
    assert record["status"] == "failed" and "symbolic link" in record["message"]
    assert [path.name for path in victim.iterdir()] == ["model.npz"]
    assert (victim / "model.npz").read_text() == "keep"


def test_settings_json_records_what_a_gwg_fit_used(tmp_path):
    """Other shards compare settings.json with the settings' hashed form: it must hold the
    PCD settings and the start (and did not)."""
    from potts_gwg.batch.runner import _settings_of

    settings = RunSettings(method="gwg", init="independent",
                           pcd=PcdSettings(n_chains=64, steps=3, max_iterations=4,
                                           target_pearson=None))
    task = task_for(example_family(), tmp_path, settings)
    (tmp_path / "sh3").mkdir()
    (tmp_path / "sh3" / "settings.json").write_text(json.dumps(resolved_settings(task)))
    assert _settings_of(tmp_path / "sh3") == json.loads(json.dumps(settings.hashed()))
    assert resolved_settings(task)["fit"]["pcd"]["n_chains"] == 64


@pytest.mark.parametrize("changes, message", [
    ({"chain": "Z"}, "no chain 'Z'; chains present: 'A'"),
    ({"structure": str(REPO_ROOT.parent / "shared" / "data" / "families" / "DHFR_1RX2"
                       / "1RX2.pdb")},
     "is not the query protein"),
])
def test_a_wrong_chain_or_structure_fails_before_the_fit(tmp_path, changes, message):
    """It failed at the contacts stage, after the whole fit, and the model was thrown away."""
    family = example_family(**changes)
    if not Path(family.structure).exists():
        pytest.skip("shared benchmark data not present")
    record = run_family(task_for(family, tmp_path))
    assert record["status"] == "failed" and record["exit_code"] == 2
    assert message in record["message"]
    log = (tmp_path / "sh3" / "log.txt").read_text()
    assert "fit plm" not in log and "plm iteration" not in log
    if "structure" in changes:
        assert "the query is the record '2O9S_A' (query first): if that is not this protein, " \
               "give another in the manifest's query column" in record["message"]


def test_the_structure_check_is_logged(finished):
    task, _ = finished
    log = (Path(task.outdir) / "sh3" / "log.txt").read_text()
    assert "chain 'A': identity 1.000, coverage 1.000 (checked before the fit)" in log


def test_contacts_of_another_format_go_when_the_format_changes(tmp_path):
    family = example_family()
    first = run_family(task_for(family, tmp_path, dataclasses.replace(
        SETTINGS, contacts_format="casp")))
    assert first["status"] == "done" and (tmp_path / "sh3" / "contacts.casp").exists()
    again = run_family(task_for(family, tmp_path))
    assert again["status"] == "done"
    names = {path.name for path in (tmp_path / "sh3").iterdir()}
    assert "contacts.tsv" in names and "contacts.casp" not in names


def test_a_rerun_that_changes_only_the_contacts_reuses_the_model(tmp_path):
    """Adding contact maps or another format to hundreds of finished families refitted
    every one of them."""
    family = example_family()
    first = run_family(task_for(family, tmp_path))
    model = tmp_path / "sh3" / "model.npz"
    fitted = model.read_bytes()
    maps = dataclasses.replace(SETTINGS, contact_map=True, contacts_format="casp")
    second = run_family(task_for(family, tmp_path, maps))
    assert second["status"] == "done", second
    log = (tmp_path / "sh3" / "log.txt").read_text()
    assert "fit: reused" in log and "plm iteration" not in log
    assert model.read_bytes() == fitted
    assert (tmp_path / "sh3" / "contact_map.png").exists()
    assert {key: second[key] for key in ("L", "N", "Neff", "iterations", "fit_s")} == \
        {key: first[key] for key in ("L", "N", "Neff", "iterations", "fit_s")}
    assert second["precision"] == first["precision"]

    refit = dataclasses.replace(maps, plm=PlmSettings(max_iterations=4))
    third = run_family(task_for(family, tmp_path, refit))
    assert third["status"] == "done" and third["iterations"] == 4
    assert "fit: reused" not in (tmp_path / "sh3" / "log.txt").read_text()


def test_a_damaged_model_is_not_reused(tmp_path):
    family = example_family()
    run_family(task_for(family, tmp_path))
    with open(tmp_path / "sh3" / "model.npz", "ab") as stream:
        stream.write(b"damage")
    again = run_family(task_for(family, tmp_path, dataclasses.replace(
        SETTINGS, contacts_format="mat")))
    assert again["status"] == "done"
    assert "fit: reused" not in (tmp_path / "sh3" / "log.txt").read_text()


def test_no_resume_refits_even_the_same_fit(tmp_path):
    family = example_family()
    run_family(task_for(family, tmp_path))
    task = dataclasses.replace(task_for(family, tmp_path, dataclasses.replace(
        SETTINGS, contacts_format="mat")), reuse_fit=False)
    assert run_family(task)["status"] == "done"
    assert "fit: reused" not in (tmp_path / "sh3" / "log.txt").read_text()
