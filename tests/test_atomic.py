"""Atomic writes: all or nothing, with ordinary file permissions."""

from __future__ import annotations

import os

import pytest

from potts_gwg.atomic import atomic_open


def test_success_replaces_the_file_with_umask_permissions(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_open(target) as stream:
        stream.write("new")
    assert target.read_text() == "new"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [path.name for path in tmp_path.iterdir()] == ["out.txt"]


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
