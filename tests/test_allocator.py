"""The command line's allocator settings (glibc's mmap and trim thresholds)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from potts_gwg import allocator

GLIBC = sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None),
                                                     "gnu_get_libc_version")
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")
THP = THP_SETTING.read_text() if THP_SETTING.exists() else ""


def _python(code: str, *arguments: str) -> str:
    """Run ``code`` in a fresh interpreter without the user's malloc settings; its stdout."""
    env = {name: value for name, value in os.environ.items()
           if name not in allocator.USER_SETTINGS + ("GLIBC_TUNABLES",)}
    completed = subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True,
                               text=True, env=env, check=True)
    return completed.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_the_thresholds_are_set_in_a_fresh_process():
    threshold = int(_python("from potts_gwg.allocator import keep_freed_memory; "
                            "print(keep_freed_memory())"))
    assert threshold in (allocator.MMAP_THRESHOLD_BYTES, allocator.FALLBACK_MMAP_THRESHOLD_BYTES)


@pytest.mark.skipif(not GLIBC or "[always]" in THP, reason="glibc's mallopt; 4 KiB pages")
def test_a_freed_mid_sized_array_is_reused_without_page_faults():
    """A 40 MB array, allocated, written, freed and allocated again: with the thresholds the
    second one reuses the heap's pages (hardly any minor faults), without them glibc maps
    fresh pages (one fault per 4 KiB page, ~10 000; with transparent huge pages always on,
    one per 2 MiB, hence the skip)."""
    code = """
import ctypes, resource, sys
from potts_gwg.allocator import MMAP_THRESHOLD_BYTES, keep_freed_memory
if sys.argv[-1] == "keep" and keep_freed_memory() != MMAP_THRESHOLD_BYTES:
    print(-1)  # an older glibc: 40 MB arrays stay above its largest threshold
    sys.exit()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
size = 40 * 2**20
first = libc.malloc(size); ctypes.memset(first, 1, size); libc.free(first)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
second = libc.malloc(size); ctypes.memset(second, 1, size)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    pages = 40 * 2**20 // 4096
    kept = int(_python(code, "keep"))
    if kept < 0:
        pytest.skip("this glibc refuses mmap thresholds above 32 MiB")
    assert kept < pages // 10 < pages // 2 < int(_python(code, "default"))


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc_trim")
def test_freed_memory_kept_for_reuse_is_given_back_between_jobs():
    """A batch worker keeps freed arrays (thresholds above); before the next family it gives
    them back, so that family's peak is not counted from the last one's heap. Here 200 MB
    in 20 MB blocks (kept in the heap) is freed: resident memory falls only after the trim."""
    code = """
import ctypes
from potts_gwg.allocator import keep_freed_memory, release_freed_memory
def resident():
    with open("/proc/self/status") as stream:
        return next(int(line.split()[1]) * 1024 for line in stream if line.startswith("VmRSS:"))
keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
size = 20 * 2**20
blocks = [libc.malloc(size) for _ in range(10)]
for block in blocks:
    ctypes.memset(block, 1, size)
for block in reversed(blocks):
    libc.free(block)
freed = resident()
assert release_freed_memory()
print(freed - resident())
"""
    given_back = int(_python(code))
    assert given_back > 150 * 2**20


@pytest.mark.parametrize("name, value", [("MALLOC_MMAP_THRESHOLD_", "1000000"),
                                         ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1")])
def test_a_users_own_setting_wins(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert allocator.keep_freed_memory() == 0


def test_the_command_line_sets_them(monkeypatch):
    from potts_gwg.cli import entry

    calls = []
    monkeypatch.setattr(entry, "keep_freed_memory", lambda: calls.append(True))
    monkeypatch.setattr(sys, "argv", ["potts-gwg", "--help"])
    with pytest.raises(SystemExit) as stopped:
        entry.run()
    assert stopped.value.code == 0 and calls == [True]
