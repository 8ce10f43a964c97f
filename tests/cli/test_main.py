"""The command group's fault handling: out of memory anywhere, SIGTERM and Ctrl-C part way
(no partial output), no network access by fit, contacts and batch, and a command list that
loads no command (`--help` and `contacts` start without torch)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from potts_gwg.cli.main import COMMANDS, EXIT_INTERRUPTED, EXIT_TERMINATED, main
from potts_gwg.cli.options import DeviceName, FiniteFloatRange

from potts_gwg.device import note_memory_estimate

EXAMPLE = Path(__file__).resolve().parents[2] / "data" / "PF00018_2O9S"
EXAMPLE_MSA = EXAMPLE / "PF00018_2O9S.fasta"
EXAMPLE_PDB = EXAMPLE / "2O9S_A.pdb"
CUDA_OOM_TEXT = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
                 "79.19 GiB of which 1.25 GiB is free. Including non-PyTorch memory, this process "
                 "has 77.93 GiB memory in use.")


def run(*arguments):
    return CliRunner().invoke(main, [str(argument) for argument in arguments])


def assert_one_line_error(result, exit_code: int) -> str:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("error", [torch.OutOfMemoryError(CUDA_OOM_TEXT),
                                   torch.cuda.OutOfMemoryError(CUDA_OOM_TEXT)])
def test_cuda_out_of_memory_in_fit_is_a_resource_error_with_the_estimate(tmp_path, monkeypatch,
                                                                        error):
    def stage(*args, **kwargs):
        note_memory_estimate(12 * 2**30, "a PLM fit of L=48, N=920")
        raise error

    monkeypatch.setattr("potts_gwg.pipeline.fit_stage", stage)
    line = assert_one_line_error(run("fit", EXAMPLE_MSA, "-o", tmp_path / "m.npz"), 3)
    assert line.startswith("error: out of memory on the GPU (tried to allocate 2.00 GiB; "
                           "1.25 GiB free of 79.19 GiB); a PLM fit of L=48, N=920 was estimated "
                           "to need about 12.0 GiB; change: "), line
    for advice in ("smaller alignment", "--device cpu", "--max-memory SIZE"):  # fit's options
        assert advice in line
    assert list(tmp_path.iterdir()) == []


def test_out_of_memory_in_contacts_and_on_the_cpu(tmp_path, monkeypatch):
    def gpu_stage(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError(CUDA_OOM_TEXT)

    monkeypatch.setattr("potts_gwg.cli.contacts.contacts_stage", gpu_stage)
    line = assert_one_line_error(run("contacts", tmp_path / "any.npz"), 3)
    assert "out of memory on the GPU" in line and "estimated" not in line  # none was noted
    # contacts has no option that would help: no advice to use options it does not have
    assert line.endswith("; use a machine with more memory") and "--" not in line

    def cpu_stage(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 96000000000 bytes.")

    monkeypatch.setattr("potts_gwg.pipeline.fit_stage", cpu_stage)
    line = assert_one_line_error(run("fit", EXAMPLE_MSA, "-o", tmp_path / "m.npz"), 3)
    assert line.startswith("error: out of memory on the host (CPU memory) (tried to allocate "
                           "89.4 GiB); change: a smaller alignment"), line
    assert "--device cpu" not in line


def test_other_runtime_errors_stay_internal_errors(tmp_path, monkeypatch):
    def stage(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr("potts_gwg.pipeline.fit_stage", stage)
    line = assert_one_line_error(run("fit", EXAMPLE_MSA, "-o", tmp_path / "m.npz"), 70)
    assert "internal error (RuntimeError: shape mismatch)" in line


@pytest.mark.parametrize("signum, exit_code, message", [
    (signal.SIGTERM, EXIT_TERMINATED, "error: terminated (SIGTERM)"),
    (signal.SIGINT, EXIT_INTERRUPTED, "error: interrupted"),
])
def test_a_signal_while_the_model_is_written_leaves_the_old_file(tmp_path, monkeypatch, signum,
                                                                  exit_code, message):
    output = tmp_path / "m.npz"
    np.savez(output, h=np.zeros((1, 2)), J=np.zeros((1, 1, 2, 2)))  # an earlier model
    previous = output.read_bytes()
    real_savez = np.savez

    def savez_then_signal(stream, **arrays):
        real_savez(stream, **arrays)  # the whole archive is in the temporary file...
        os.kill(os.getpid(), signum)  # ...when the signal arrives, before the rename

    monkeypatch.setattr(np, "savez", savez_then_signal)
    handler = signal.getsignal(signal.SIGTERM)
    result = run("fit", EXAMPLE_MSA, "-o", output, "--device", "cpu", "--max-iterations", "2",
                 "--quiet")
    assert result.exit_code == exit_code, result.output
    assert result.stderr.splitlines()[-1] == message and "Traceback" not in result.output
    assert [path.name for path in tmp_path.iterdir()] == ["m.npz"]
    assert output.read_bytes() == previous
    assert signal.getsignal(signal.SIGTERM) is handler  # restored after the command


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_during_a_fit_leaves_no_output(tmp_path, signum):
    """SIGHUP: the terminal closed (a dropped ssh session); it unwinds like SIGTERM."""
    outdir = tmp_path / "out"
    outdir.mkdir()
    command = [sys.executable, "-m", "potts_gwg", "fit", str(EXAMPLE_MSA), "-o",
               str(outdir / "model.npz"), "--device", "cpu", "--threads", "1",
               "--max-iterations", "100000", "--tolerance", "0"]  # minutes of fitting
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    seen = []
    for line in process.stderr:  # progress lines: the fit is iterating
        seen.append(line)
        if "iteration" in line:
            break
    process.send_signal(signum)
    stdout, rest = process.communicate(timeout=60)
    assert any("iteration" in line for line in seen), "".join(seen) + rest
    assert process.returncode == 128 + signum, rest
    name = signal.Signals(signum).name
    assert rest.splitlines()[-1] == f"error: terminated ({name})" and "Traceback" not in rest
    assert stdout == "" and list(outdir.iterdir()) == []


def test_a_fit_under_nohup_ignores_sighup(tmp_path):
    """nohup (SIGHUP ignored when the command starts) keeps working: the hang-up handler is
    not installed over it."""
    output = tmp_path / "model.npz"
    command = [sys.executable, "-m", "potts_gwg", "fit", str(EXAMPLE_MSA), "-o", str(output),
               "--device", "cpu", "--threads", "1", "--max-iterations", "60", "--tolerance", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"},
                               preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    for line in process.stderr:
        if "iteration" in line:
            break
    process.send_signal(signal.SIGHUP)
    stdout, rest = process.communicate(timeout=120)
    assert process.returncode == 0, rest
    assert "fit plm:" in stdout and output.is_file()


def test_ctrl_c_while_the_command_line_loads_is_one_line():
    """Importing torch takes seconds; a Ctrl-C then (here: raised by the import of the
    commands) was a traceback from inside the import machinery."""
    code = ("import sys\n"
            "class Interrupting:\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name == 'potts_gwg.cli.main':\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Interrupting())\n"
            "from potts_gwg.cli.entry import run\n"
            "run()\n")
    result = subprocess.run([sys.executable, "-c", code, "msa-info", "x"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == EXIT_INTERRUPTED
    assert result.stderr == "error: interrupted\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_under_standard_output_is_one_line_exit_3(example_model):
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "potts_gwg", "contacts",
                                 str(example_model)], stdout=full, stderr=subprocess.PIPE,
                                text=True, check=False)
    assert result.returncode == 3, result.stderr
    assert result.stderr == "error: writing the output: No space left on device\n"


# Refuses and records every attempt to reach the network: IP sockets, name lookups, connects.
NETWORK_GUARD = '''
import os
import socket


def arm(patch, log):
    def refuse(what):
        with open(log, "a") as stream:
            stream.write(f"{os.getpid()} {what}\\n")
        raise OSError(f"network access attempted: {what}")

    class GuardedSocket(socket.socket):
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            if fileno is None and family != socket.AF_UNIX:
                refuse(f"socket({family!r})")
            super().__init__(family, type, proto, fileno)

    patch(socket, "socket", GuardedSocket)
    patch(socket, "create_connection", lambda *a, **k: refuse(f"create_connection{a}"))
    patch(socket, "getaddrinfo", lambda *a, **k: refuse(f"getaddrinfo{a}"))
'''


def test_fit_contacts_and_batch_never_touch_the_network(tmp_path, monkeypatch):
    """In this process by monkeypatching; in the batch's worker processes (fresh
    interpreters) by a sitecustomize module on PYTHONPATH that does the same."""
    guard_dir = tmp_path / "guard"
    guard_dir.mkdir()
    log, armed = tmp_path / "network.log", tmp_path / "armed.log"
    (guard_dir / "network_guard.py").write_text(NETWORK_GUARD)
    (guard_dir / "sitecustomize.py").write_text(
        f"import os\nimport network_guard\nnetwork_guard.arm(setattr, {str(log)!r})\n"
        f"open({str(armed)!r}, 'a').write(f'{{os.getpid()}}\\n')\n")
    spec = importlib.util.spec_from_file_location("network_guard", guard_dir / "network_guard.py")
    network_guard = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(network_guard)
    network_guard.arm(monkeypatch.setattr, str(log))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(guard_dir), *filter(None, [os.environ.get("PYTHONPATH")])]))
    import socket

    with pytest.raises(OSError, match="network access attempted"):
        socket.create_connection(("example.org", 80))
    log.unlink()

    model = tmp_path / "m.npz"
    assert run("fit", EXAMPLE_MSA, "-o", model, "--device", "cpu", "--max-iterations", "5",
               "--quiet").exit_code == 0
    contacts = run("contacts", model, "--pdb", EXAMPLE_PDB, "--chain", "A", "-o",
                   tmp_path / "c.tsv")
    assert contacts.exit_code == 0, contacts.output
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text(f"id\tmsa\tstructure\tchain\nsh3\t{EXAMPLE_MSA}\t{EXAMPLE_PDB}\tA\n")
    batch = run("batch", manifest, "-o", tmp_path / "out", "--executor", "local", "--devices",
                "cpu", "--workers", "1", "--threads", "1", "--max-iterations", "5", "--quiet")
    assert batch.exit_code == 0, batch.output
    assert (tmp_path / "out" / "sh3" / "evaluation.json").exists()
    assert not log.exists(), log.read_text()
    worker_pids = {int(line) for line in armed.read_text().split()}
    assert worker_pids and os.getpid() not in worker_pids  # the worker ran guarded


def test_the_command_lists_give_each_command_its_own_summary():
    """`potts-gwg --help` (and `ebm --help`) list commands without importing them, from
    COMMANDS (JOINT): each summary there must be what the command's own help starts with."""
    from potts_gwg.cli.ebm import JOINT, command as ebm

    assert main.list_commands(click.Context(main)) == sorted(COMMANDS)
    for group, path, lazy in ((main, [], COMMANDS), (ebm, ["ebm"], JOINT)):
        context = click.Context(group)
        for name, (_, summary) in lazy.items():
            command = group.get_command(context, name)
            assert command is not None and command.name == name
            assert summary == command.get_short_help_str(limit=1000), name
        listing = " ".join(CliRunner().invoke(main, [*path, "--help"]).output.split())
        for name in group.list_commands(context):
            summary = group.get_command(context, name).get_short_help_str(limit=1000)
            assert f"{name} {summary}" in listing, (path, name)


# Runs the command line, then says on stderr whether torch was imported.
TORCH_PROBE = '''
import atexit
import sys

atexit.register(lambda: sys.stderr.write(f"torch imported: {'torch' in sys.modules}\\n"))
from potts_gwg.cli.entry import run
run()
'''


def run_probing_torch(*arguments) -> tuple[subprocess.CompletedProcess, bool]:
    result = subprocess.run([sys.executable, "-c", TORCH_PROBE, *map(str, arguments)],
                            capture_output=True, text=True, check=False)
    last = result.stderr.splitlines()[-1]
    assert last.startswith("torch imported: "), result.stderr
    return result, last == "torch imported: True"


def test_help_usage_errors_and_contacts_run_without_importing_torch(example_model, tmp_path):
    """Importing torch takes ~2 s: more than the rest of `contacts` on a small family, and
    than reading a command's --help or being told an option is wrong."""
    output, picture = tmp_path / "c.tsv", tmp_path / "map.png"
    for arguments in (["--help"], ["--version"], ["fit", "--help"], ["sample", "--help"],
                      ["batch", "--help"], ["msa-info", "--help"], ["ebm", "--help"],
                      ["ebm", "train", "--help"], ["ebm", "joint", "--help"],
                      ["ebm", "joint", "train", "--help"], ["ebm", "joint", "sample", "--help"],
                      ["contacts", example_model, "--pdb", EXAMPLE_PDB, "-o", output,
                       "--plot", picture, "--json"]):
        result, imported = run_probing_torch(*arguments)
        assert result.returncode == 0 and not imported, (arguments, result.stderr)
    assert output.exists() and picture.exists()
    for arguments in (["fit", EXAMPLE_MSA, "--theta", "2"], ["fit", EXAMPLE_MSA, "--seed", "-1"],
                      ["sample", example_model, "-o", tmp_path / "s.fasta"],
                      ["ebm", "joint", "sample"]):
        result, imported = run_probing_torch(*arguments)
        assert result.returncode == 2 and not imported, (arguments, result.stderr)
    # the probe does see torch where a command needs it
    result, imported = run_probing_torch("fit", EXAMPLE_MSA, "-o", tmp_path / "m.npz", "-q",
                                         "--max-iterations", "1")
    assert result.returncode == 0 and imported, result.stderr


def every_parameter(group: click.Group = main, prefix=()):
    """(path, parameter) of every parameter of every command under ``group``."""
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            yield from every_parameter(command, (*prefix, name))
        for parameter in command.params:
            yield (*prefix, name), parameter


def commands_with(option: str):
    """(path, parameter) of every command that takes ``option``."""
    return ((path, parameter) for path, parameter in every_parameter()
            if option in parameter.opts)


def test_every_device_option_takes_the_same_names():
    """--device of every command parses auto|cpu|cuda[:N] alike (sample's took any string and
    refused a typo only later, with exit 4 instead of a usage error)."""
    options = list(commands_with("--device"))
    assert {path for path, _ in options} >= {("fit",), ("sample",), ("ebm", "train")}
    for path, parameter in options:
        assert isinstance(parameter.type, DeviceName), path


def test_every_seed_out_of_range_is_a_one_line_error(tmp_path, monkeypatch):
    """A seed past 2^63 - 1 failed inside torch (an internal error) in fit and batch; a
    refused seed writes nothing (not even fit's default output in the current folder). Every
    help shows the range."""
    monkeypatch.chdir(tmp_path)
    paths = [path for path, _ in commands_with("--seed")]
    assert {("fit",), ("batch",), ("sample",), ("ebm", "train")} <= set(paths)
    for path in paths:
        assert "--seed 0..2^63-1" in CliRunner().invoke(main, [*path, "--help"]).output, path
        for seed in ("-1", str(2 ** 63), str(2 ** 70)):
            result = CliRunner().invoke(main, [*path, "--seed", seed, str(EXAMPLE_MSA)])
            assert result.exit_code == 2, (path, result.output)
            assert result.stderr == (f"error: --seed must lie in 0..{2 ** 63 - 1}, got "
                                     f"{seed}\n"), path
    assert list(tmp_path.iterdir()) == []


def test_every_real_option_refuses_nan_and_infinity(tmp_path, monkeypatch):
    """click's FloatRange takes nan (it passes every bound) and inf; the settings then failed
    with an internal error (exit 70, "report it"). Every real-valued option is a
    FiniteFloatRange, and nan or inf is a usage error that writes nothing."""
    monkeypatch.chdir(tmp_path)
    reals = [(path, parameter) for path, parameter in every_parameter()
             if isinstance(parameter.type, click.FloatRange)]
    assert {("fit",), ("msa-info",), ("sample",), ("batch",), ("ebm", "train")} <= \
        {path for path, _ in reals}
    for path, parameter in reals:
        assert isinstance(parameter.type, FiniteFloatRange), (path, parameter.opts)
    for arguments in (["fit", str(EXAMPLE_MSA), "--lambda-h", "nan"],
                      ["fit", str(EXAMPLE_MSA), "--method", "gwg", "--max-time", "inf"],
                      ["msa-info", str(EXAMPLE_MSA), "--theta", "nan"],
                      ["batch", str(EXAMPLE_MSA), "-o", "out", "--lambda-j", "inf"]):
        result = CliRunner().invoke(main, arguments)
        assert result.exit_code == 2, (arguments, result.output)
        assert "is not a finite number" in result.stderr and "internal" not in result.stderr
    assert list(tmp_path.iterdir()) == []
