"""Device choice and out-of-memory messages, on any machine (CUDA presence is faked)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from potts_gwg.cli.main import main

from potts_gwg.device import (
    is_out_of_memory,
    memory_estimate_scope,
    note_memory_estimate,
    out_of_memory_error,
    resolve_device,
)
from potts_gwg.errors import DeviceError, ResourceError

EXAMPLE_MSA = Path(__file__).resolve().parents[1] / "data" / "PF00018_2O9S" / "PF00018_2O9S.fasta"


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def one_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU 80GB")


def test_auto_says_which_device_it_took(no_gpu):
    said = []
    assert resolve_device("auto", said.append) == torch.device("cpu")
    assert said == ["device: auto -> cpu (no CUDA GPU found; running on the CPU)"]


def test_auto_takes_the_gpu_when_there_is_one(one_gpu):
    said = []
    assert resolve_device("auto", said.append) == torch.device("cuda", 0)
    assert said == ["device: auto -> cuda:0 (Fake GPU 80GB)"]


def test_cuda_without_a_gpu_and_a_missing_index_are_device_errors(no_gpu, monkeypatch):
    for name in ("cuda", "cuda:0"):
        with pytest.raises(DeviceError, match=rf"--device {name}: no CUDA GPU is available"):
            resolve_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DeviceError, match="this machine has 1 CUDA device"):
        resolve_device("cuda:1")
    assert DeviceError.exit_code == 4


def test_fit_reports_the_device_auto_took_and_refuses_cuda(no_gpu, tmp_path):
    result = CliRunner().invoke(main, ["fit", str(EXAMPLE_MSA), "-o", str(tmp_path / "m.npz"),
                                       "--max-iterations", "1"])
    assert result.exit_code == 0, result.output
    assert "device: auto -> cpu (no CUDA GPU found" in result.stderr
    assert " s on cpu (" in result.stdout
    refused = CliRunner().invoke(main, ["fit", str(EXAMPLE_MSA), "-o", str(tmp_path / "g.npz"),
                                        "--device", "cuda:0"])
    assert refused.exit_code == 4
    assert refused.stderr == "error: --device cuda:0: no CUDA GPU is available on this machine " \
        "(use --device cpu or --device auto)\n"
    assert not (tmp_path / "g.npz").exists()
    unknown = CliRunner().invoke(main, ["fit", str(EXAMPLE_MSA), "--device", "gpu"])
    assert unknown.exit_code == 2
    assert "'gpu' is not a device: use auto, cpu, cuda or cuda:N" in unknown.stderr


def test_what_counts_as_out_of_memory():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory."))
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory."))
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried "
                                         "to allocate 8 bytes"))
    assert not is_out_of_memory(RuntimeError("The size of tensor a (3) must match"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_out_of_memory_message_quotes_the_estimate_only_inside_its_scope():
    error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 512.00 MiB. GPU 0 has a "
                                   "total capacity of 23.64 GiB of which 100.00 MiB is free.")
    with memory_estimate_scope():  # a clean slate, whatever ran earlier in this process
        with memory_estimate_scope():
            note_memory_estimate(3 * 2**30, "a PLM fit of L=300, N=20000")
            message = str(out_of_memory_error(error))
        after_scope = str(out_of_memory_error(error))
        host = str(out_of_memory_error(MemoryError()))
    assert isinstance(out_of_memory_error(error), ResourceError)
    assert message == ("out of memory on the GPU (tried to allocate 512.00 MiB; 100.00 MiB free "
                       "of 23.64 GiB); a PLM fit of L=300, N=20000 was estimated to need about "
                       "3.0 GiB; change: a smaller alignment (fewer sequences or columns), fewer "
                       "--chains, --device cpu or --max-memory SIZE to have jobs that cannot fit "
                       "refused before they start")
    assert "estimated" not in after_scope  # the inner scope is over
    assert host.startswith("out of memory on the host (CPU memory); change: ")
    assert "--device cpu" not in host
