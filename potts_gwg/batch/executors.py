"""Where the families run: local worker processes spread over CPU and GPUs, or a Ray cluster.

Both executors run the same :func:`~potts_gwg.batch.task.run_family` and hand each result
record to a callback as soon as it arrives.

* Local: one worker process per slot (``spawn`` context), each slot a device — one per GPU
  given, so a GPU fits one family at a time, and the rest on the CPU with ``threads`` torch
  threads each. CPU slots start a family only while the PLM memory estimates of the families
  running on the CPU fit the host's available memory (a family too large for any budget runs
  alone and is refused by the fit itself, with the estimate). A worker that dies (killed for
  memory, a crash) fails its family and is replaced; worker processes die with the batch.
* Ray: ``ray.init(address=…)`` (or the Ray instance already started in this process) and one
  task per family, requesting one GPU on a GPU cluster, ``threads`` CPUs otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from ..allocator import keep_freed_memory
from ..errors import DeviceError, InputError
from .task import ERROR, EXIT_INTERNAL, FamilyTask, _write_json, base_record, run_family

ResultCallback = Callable[[dict], None]
Announce = Callable[[str], None]
MEMORY_HEADROOM = 0.9  # fraction of the host's available memory the CPU families may take


@dataclass(frozen=True)
class Slot:
    """One local worker: a device and its torch thread count.

    ``elastic``: a CPU worker whose threads follow the load — the cores left to the CPU
    workers shared among those busy — so a family left running alone takes the whole CPU.
    """

    device: str                 # "cpu" or "cuda:N"
    threads: int | None = None
    elastic: bool = False

    @property
    def is_gpu(self) -> bool:
        return self.device.startswith("cuda")


def cpu_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def parse_devices(text: str, cuda_count: int | None = None) -> list[str]:
    """``auto``, ``cpu``, ``cuda`` (all GPUs), ``cuda:N`` or a comma list -> device names.

    ``auto`` is every CUDA GPU when there is one, else the CPU.
    """
    if cuda_count is None:
        import torch

        cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    names: list[str] = []
    for item in (part.strip().lower() for part in text.split(",")):
        if item == "auto":
            expanded = [f"cuda:{index}" for index in range(cuda_count)] or ["cpu"]
        elif item == "cpu":
            expanded = ["cpu"]
        elif item == "cuda":
            if cuda_count == 0:
                raise DeviceError(f"--devices {text}: no CUDA GPU is available on this machine "
                                  "(use --devices cpu or auto)")
            expanded = [f"cuda:{index}" for index in range(cuda_count)]
        elif item.startswith("cuda:") and item[5:].isdigit():
            if int(item[5:]) >= cuda_count:
                raise DeviceError(f"--devices {text}: {item} is not available (this machine has "
                                  f"{cuda_count} CUDA device(s))")
            expanded = [item]
        else:
            raise InputError(f"--devices {text!r}: unknown device {item!r} (use auto, cpu, cuda, "
                             "cuda:N, or a comma-separated list such as cuda:0,cuda:1 or "
                             "cpu,cuda:0)")
        names.extend(name for name in expanded if name not in names)
    return names


def plan_slots(devices: Sequence[str], workers: int | None, threads: int | None,
               announce: Announce = lambda message: None, cores: int | None = None
               ) -> list[Slot]:
    """Spread ``workers`` over the devices: one per GPU first, the rest on the CPU.

    Defaults: one worker per GPU given, plus one CPU worker when ``cpu`` is among the
    devices; CPU workers share the cores: ``threads`` each, or by default the cores left to
    the CPU divided among the CPU workers busy at the time (elastic).
    """
    cores = cores or cpu_cores()
    gpus = [device for device in devices if device.startswith("cuda")]
    use_cpu = "cpu" in devices
    if workers is None:
        n_gpu, n_cpu = len(gpus), (1 if use_cpu else 0)
    else:
        n_gpu = min(workers, len(gpus))
        n_cpu = workers - n_gpu if use_cpu else 0
        if not use_cpu and workers > len(gpus):
            announce(f"--workers {workers}: one family per GPU at a time, so {len(gpus)} "
                     f"worker(s) on {', '.join(gpus)} (add cpu to --devices to use the CPU too)")
        if use_cpu and n_cpu == 0 and n_gpu == 0:
            n_cpu = 1
    if threads is None:
        cpu_threads = max(1, (cores - n_gpu) // n_cpu) if n_cpu else None
        gpu_threads = 1 if n_cpu else max(1, cores // max(1, n_gpu))
    else:
        cpu_threads = gpu_threads = threads
    elastic = threads is None and n_cpu > 1
    return [Slot(device, gpu_threads) for device in gpus[:n_gpu]] + \
        [Slot("cpu", cpu_threads, elastic) for _ in range(n_cpu)]


def crash_record(task: FamilyTask, message: str, reason: str = "worker died",
                 seconds: float | None = None) -> dict:
    """The failure record of a family whose worker never returned; written to error.json."""
    record = base_record(task.family.id, task.settings_hash, task.settings, "failed")
    record.update(device=task.device, threads=task.threads, message=message, reason=reason,
                  exit_code=EXIT_INTERNAL,
                  wall_s=None if seconds is None else round(seconds, 3))
    folder = Path(task.outdir) / task.family.id  # a worker that died at start made none
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / ERROR, {"settings_hash": task.settings_hash, "result": record})
    except OSError:
        pass
    return record


# ----------------------------------------------------------------------------- local

def _worker_init(threads: int | None, parent: int, busy=None, cores: int = 1,
                 device: str = "cpu") -> None:
    """Runs first in every worker: die with the batch, use ``threads`` torch threads (with
    ``busy``, a shared count of busy CPU workers: ``cores`` // busy, elastic), and make a GPU
    slot's device the current one (else CUDA calls without a device open a context on GPU 0
    in every worker)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: killed when the batch dies
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:
            os._exit(1)
    # Ctrl-C and a closed terminal's SIGHUP reach the whole process group: the batch process
    # decides what to do.
    for number in (signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if number is not None:
            signal.signal(number, signal.SIG_IGN)
    keep_freed_memory()  # as the potts-gwg command does
    # tqdm's default lock is a multiprocessing semaphore, registered with the batch's resource
    # tracker; a worker killed on Ctrl-C leaves it behind, and the tracker warns at exit.
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[name] = str(threads)
    import torch

    if threads:
        torch.set_num_threads(threads)
    gpu = torch.device(device)
    if gpu.type == "cuda" and gpu.index is not None:
        torch.cuda.set_device(gpu)
    if busy is not None:
        from . import task as task_module

        task_module.thread_policy = lambda: max(1, cores // max(1, busy.value))


def run_local(tasks: Sequence[FamilyTask], slots: Sequence[Slot], on_result: ResultCallback,
              estimates: dict[str, int] | None = None, memory_budget: int | None = None) -> None:
    """Run ``tasks`` (in this order, as slots free up) on local worker processes."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    busy_cpu = context.Value("i", 0)  # CPU workers running a family, for elastic threads
    cpu_cores_left = max(1, cpu_cores() - sum(slot.is_gpu for slot in slots))
    estimates = estimates or {}
    pending = list(tasks)
    executors: dict[int, ProcessPoolExecutor] = {}
    running: dict[Future, tuple[int, FamilyTask]] = {}
    submitted: dict[str, float] = {}
    order = sorted(range(len(slots)), key=lambda index: not slots[index].is_gpu)
    clean = False
    try:
        while pending or running:
            busy = {index for index, _ in running.values()}
            for index in order:
                if index in busy or not pending:
                    continue
                slot = slots[index]
                choice = _pick(pending, slot, running, slots, estimates, memory_budget)
                if choice is None:
                    continue
                task = dataclasses.replace(pending.pop(choice), device=slot.device,
                                           threads=slot.threads)
                if index not in executors:
                    executors[index] = ProcessPoolExecutor(
                        max_workers=1, mp_context=context, initializer=_worker_init,
                        initargs=(slot.threads, os.getpid(),
                                  busy_cpu if slot.elastic else None, cpu_cores_left,
                                  slot.device))
                if not slot.is_gpu:
                    with busy_cpu.get_lock():
                        busy_cpu.value += 1
                running[executors[index].submit(run_family, task)] = (index, task)
                submitted[task.family.id] = time.perf_counter()
                busy.add(index)
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                index, task = running.pop(future)
                if not slots[index].is_gpu:
                    with busy_cpu.get_lock():
                        busy_cpu.value -= 1
                try:
                    record = future.result()
                except Exception as error:  # noqa: BLE001 - the worker died or could not start
                    executors.pop(index).shutdown(wait=False, cancel_futures=True)
                    # Workers are spawned: they import the caller's main module again, so a
                    # script calling run_batch without a __main__ guard kills them at start.
                    guard = "; from a Python script, call run_batch under " \
                        "'if __name__ == \"__main__\":'" if isinstance(error, BrokenProcessPool) \
                        else ""
                    record = crash_record(
                        task, "the worker process died while running this family (killed, "
                        f"e.g. for lack of memory, or crashed: {type(error).__name__}{guard})",
                        seconds=time.perf_counter() - submitted[task.family.id])
                on_result(record)
        clean = True
    finally:
        for executor in executors.values():
            if not clean:
                _kill_workers(executor)
            executor.shutdown(wait=clean, cancel_futures=True)


def _pick(pending: list[FamilyTask], slot: Slot, running, slots, estimates, budget) -> int | None:
    """Index in ``pending`` of the task this slot should start, or None to wait."""
    if slot.is_gpu or budget is None:
        return 0
    on_cpu = [task for index, task in running.values() if not slots[index].is_gpu]
    reserved = sum(estimates.get(task.family.id, 0) for task in on_cpu)
    for position, task in enumerate(pending):
        if not on_cpu or reserved + estimates.get(task.family.id, 0) <= budget:
            return position
    return None


def _kill_workers(executor: ProcessPoolExecutor) -> None:
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        try:
            process.kill()
        except (OSError, AttributeError):
            pass


# ----------------------------------------------------------------------------- ray

def _run_family_in_ray(task: FamilyTask) -> dict:
    """``run_family`` in a Ray worker, with the allocator settings of the local workers."""
    keep_freed_memory()
    return run_family(task)


def run_ray(tasks: Sequence[FamilyTask], devices: str, threads: int | None,
            workers: int | None, address: str | None, on_result: ResultCallback,
            announce: Announce = lambda message: None) -> None:
    """Run ``tasks`` as Ray tasks; at most ``workers`` in flight (default: all)."""
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray: pip install 'potts-gwg[ray]' (or "
                         "pip install ray)") from None
    started_here = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise InputError(f"--ray-address {address or '(start a local Ray)'}: cannot start "
                             f"or reach Ray ({error})") from None
        started_here = True
    running: dict = {}
    try:
        gpu = _ray_uses_gpu(ray, devices)
        threads = threads or 1
        resources = ray.cluster_resources()
        announce(f"ray: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs in "
                 f"the cluster; each family requests {threads} CPU(s)"
                 f"{' and 1 GPU' if gpu else ''}")
        remote = ray.remote(_run_family_in_ray).options(
            num_cpus=threads, num_gpus=1 if gpu else 0, max_retries=0)
        pending = list(tasks)
        while pending or running:
            while pending and (workers is None or len(running) < workers):
                task = dataclasses.replace(pending.pop(0), device="cuda" if gpu else "cpu",
                                           threads=threads)
                running[remote.remote(task)] = task
            ready, _ = ray.wait(list(running), num_returns=1)
            for reference in ready:
                task = running.pop(reference)
                try:
                    record = ray.get(reference)
                except Exception as error:  # noqa: BLE001 - the Ray worker died or never ran
                    first_line = (str(error).strip().splitlines() or [""])[0]
                    record = crash_record(task, "the Ray task did not return "
                                          f"({type(error).__name__}: {first_line})")
                on_result(record)
    except BaseException:
        for reference in running:
            with contextlib.suppress(Exception):  # already finished or gone
                ray.cancel(reference, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()


def _ray_uses_gpu(ray, devices: str) -> bool:
    names = {part.strip().lower() for part in devices.split(",")}
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    if names == {"cpu"}:
        return False
    if names == {"auto"}:
        return cluster_gpus >= 1
    if any(name.startswith("cuda") for name in names):
        if cluster_gpus < 1:
            raise DeviceError(f"--devices {devices}: the Ray cluster has no GPU")
        return True
    raise InputError(f"--devices {devices!r}: with --executor ray use auto, cpu or cuda "
                     "(Ray assigns the GPUs)")
