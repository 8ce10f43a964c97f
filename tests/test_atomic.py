"""Atomic writes: all or nothing, with ordinary file permissions."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from potts_gwg.atomic import atomic_open, check_outputs, output_target
from potts_gwg.errors import InputError, ResourceError


def test_a_new_file_gets_umask_permissions(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_open(target) as stream:
        stream.write("new")
    assert target.read_text() == "new"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [path.name for path in tmp_path.iterdir()] == ["out.txt"]


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    target.chmod(0o640)
    with atomic_open(target) as stream:
        stream.write("new")
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o640


def test_an_output_that_is_an_input_is_refused_also_through_a_link(tmp_path):
    source = tmp_path / "family.fasta"
    source.write_text(">q\nACD\n")
    link = tmp_path / "link.fasta"
    link.symlink_to(source)
    for output in (source, link):
        with pytest.raises(InputError, match="is also an input of this command .*family"
                                             r"\.fasta\); writing it would destroy that input"):
            output_target(output, inputs=(None, source))
        with pytest.raises(InputError, match="is also an input"):
            check_outputs((None, output), inputs=(link,))
    assert source.read_text() == ">q\nACD\n"
    assert output_target(tmp_path / "model.npz", inputs=(source,)) == tmp_path / "model.npz"


def test_dash_is_refused_where_only_files_are_written(tmp_path):
    with pytest.raises(InputError, match="^-: this output is a file"):
        output_target("-")


def test_a_folder_without_write_permission_is_refused_before_the_work(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root writes in any folder: the permission check says no instead
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked
                            and real_access(path, mode))
    try:
        with pytest.raises(InputError, match=r"out\.tsv: cannot write in the folder .*locked"):
            output_target(locked / "out.tsv")
    finally:
        locked.chmod(0o755)


def test_a_name_near_the_limit_still_has_room_for_its_temporary(tmp_path):
    target = tmp_path / ("a" * 250 + ".tsv")
    with atomic_open(target) as stream:
        stream.write("x")
    assert target.read_text() == "x"
    assert [path.name for path in tmp_path.iterdir()] == [target.name]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_failed_write_names_the_output_not_its_temporary():
    with pytest.raises(ResourceError, match=r"^/dev/full: cannot write: No space left on "
                                            "device; free some space"):
        with atomic_open("/dev/full") as stream:
            stream.write("x" * 100)


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as stream:
        stream.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["out.txt"]


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path):
    from potts_gwg.atomic import remove_stale_temporaries

    target = tmp_path / "model[1].npz"
    leftovers = [tmp_path / ".model[1].npz.abc123.npz.tmp", tmp_path / ".model[1].npz.x.tmp"]
    unrelated = [tmp_path / ".other.npz.abc.tmp", tmp_path / "model[1].npz"]
    for path in leftovers + unrelated:
        path.write_bytes(b"partial")
    assert sorted(remove_stale_temporaries(target)) == sorted(leftovers)
    assert all(path.exists() for path in unrelated)


def test_a_symbolic_link_is_written_through_and_kept(tmp_path):
    real = tmp_path / "data" / "real.txt"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with atomic_open(link) as stream:
        stream.write("new")
    assert link.is_symlink() and real.read_text() == "new"
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "data" / "created.txt")
    with atomic_open(dangling) as stream:
        stream.write("made")
    assert dangling.is_symlink() and (tmp_path / "data" / "created.txt").read_text() == "made"


def test_a_fifo_receives_the_bytes_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = {}
    reader = threading.Thread(target=lambda: received.update(text=fifo.read_text()),
                              daemon=True)  # a failed write must not leave pytest waiting
    reader.start()
    with atomic_open(fifo) as stream:
        stream.write("through the pipe")
    reader.join(timeout=10)
    assert received == {"text": "through the pipe"} and stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["pipe"]


def test_a_folder_or_a_file_as_parent_is_refused_before_writing(tmp_path):
    (tmp_path / "plain.txt").write_text("keep")
    with pytest.raises(InputError, match=r"is a folder; give a file name"):
        output_target(tmp_path)
    with pytest.raises(InputError, match=r"plain\.txt/out\.tsv: .*plain\.txt is not a folder"):
        output_target(tmp_path / "plain.txt" / "out.tsv")
    with pytest.raises(InputError, match="is not a folder"), atomic_open(
            tmp_path / "plain.txt" / "deeper" / "out.tsv"):
        pass
    assert (tmp_path / "plain.txt").read_text() == "keep"


def test_a_missing_folder_is_refused_not_created(tmp_path):
    """A typo in a folder name would leave folders behind (and let sub/../input through)."""
    for output in (tmp_path / "new" / "out.tsv", tmp_path / "new" / "deeper" / "out.tsv"):
        with pytest.raises(InputError, match=rf"the folder {tmp_path / 'new'} does not exist; "
                                             "create it first"):
            output_target(output)
        with pytest.raises(InputError, match="does not exist"), atomic_open(output):
            pass
    assert list(tmp_path.iterdir()) == []


def test_an_input_reached_through_a_missing_folder_is_refused(tmp_path, monkeypatch):
    """sub/../family.fasta names the input once sub/ exists: it was overwritten."""
    monkeypatch.chdir(tmp_path)
    Path("family.fasta").write_text(">q\nACD\n")
    for output in ("sub/../family.fasta", tmp_path / "sub" / ".." / "family.fasta"):
        with pytest.raises(InputError, match="is also an input of this command"):
            output_target(output, inputs=("family.fasta",))
    assert Path("family.fasta").read_text() == ">q\nACD\n" and not Path("sub").exists()
