"""Sampler throughput on Potts models and mixing (ESS/s) on a 2-D lattice Ising model.

Throughput: Potts, q = 21, L ∈ {50, 150, 450}, 1 000 and 10 000 chains. GWG chain-steps/s
and Gibbs site-updates/s with the local-field path ("fast"), against the same sampler in the
GWG paper's style ("baseline": ``local_fields=False``, i.e. GWG evaluates the full energy and
its autograd gradient every step, Gibbs evaluates the full energy of each of the q candidate
values). Both variants run in the same process on the same model. A configuration whose
step is predicted (from the next smaller one) to take longer than ``--max-step-seconds`` is
skipped and recorded with a note; one that turns out slow is timed on fewer steps.

Mixing: ESS per second of the mean spin, 100 chains on a 2-D periodic lattice Ising model
(as in the GWG paper's sampling experiments): Gibbs, GWG, multi-flip GWG (and Metropolis).

    python benchmarks/sampler_throughput.py --device cpu --threads 1
    python benchmarks/sampler_throughput.py --device cuda --max-step-seconds 60

Writes one JSON file (a list of records) to benchmarks/results/sampler_throughput_<device>.json.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from potts_gwg.device import device_description, resolve_device
from potts_gwg.engine import (GibbsSampler, GWGSampler, LatticeIsingEnergy, MetropolisSampler,
                              PottsEnergy, effective_sample_size)

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, write_json  # noqa: E402
Q = 21
LENGTHS = (50, 150, 450)
CHAINS = (1_000, 10_000)
FLOAT_BYTES = 4
# Passes over a chain's (L, q) float32 arrays per step, counted from the kernels' tensor ops
# (each read or write of a full F-sized array is one pass); "minimum" is what a fused kernel
# must move: read F and two coupling rows, write F.
FAST_PASSES = {"gwg": 17, "gibbs": 6}
MINIMUM_PASSES = 4


def git(*arguments: str) -> str | None:
    try:
        return subprocess.run(["git", *arguments], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


class PeakMemory:
    """Peak memory of one measurement: CUDA allocator peak, or the process's peak RSS
    (Linux VmHWM, reset through /proc/self/clear_refs) on the CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = ("cuda max_memory_allocated" if device.type == "cuda"
                     else "process peak RSS (VmHWM)")

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass

    def read(self) -> int | None:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device)
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_potts(length: int, device: torch.device, seed: int = 0) -> PottsEnergy:
    """h ~ N(0, 1), symmetric J ~ N(0, 0.05²) with J[i, i] = 0, float32."""
    generator = torch.Generator(device=device).manual_seed(seed)
    h = torch.randn(length, Q, generator=generator, device=device)
    J = 0.05 * torch.randn(length, length, Q, Q, generator=generator, device=device)
    J = J + J.permute(1, 0, 3, 2)
    J[torch.arange(length), torch.arange(length)] = 0
    return PottsEnergy(h, J)


def time_steps(sampler, model, x0, generator, min_seconds: float, max_steps: int,
               max_step_seconds: float, device: torch.device) -> tuple[int, float, bool]:
    """(steps, seconds, timed on the warm-up step) after one warm-up step; a step slower
    than a quarter of ``max_step_seconds`` is timed once, on the warm-up step itself."""
    state = sampler.init(model, x0)
    synchronize(device)
    start = time.perf_counter()
    state, _ = sampler.step(model, state, generator)
    synchronize(device)
    first = time.perf_counter() - start
    if first > max_step_seconds / 4:
        return 1, first, True
    steps, start = 0, time.perf_counter()
    while steps < max_steps and (steps == 0 or time.perf_counter() - start < min_seconds):
        state, _ = sampler.step(model, state, generator)
        steps += 1
        synchronize(device)
    return steps, time.perf_counter() - start, False


def throughput(args, device: torch.device, base: dict) -> list[dict]:
    records = []
    memory = PeakMemory(device)
    previous: dict[tuple[str, str, int], tuple[int, float]] = {}   # last L and s/step
    for length in LENGTHS:
        model = random_potts(length, device)
        for chains in CHAINS:
            for sampler_name in ("gwg", "gibbs"):
                for variant in ("fast", "baseline"):
                    key = (sampler_name, variant, chains)
                    record = dict(base, benchmark="throughput", L=length, q=Q, chains=chains,
                                  sampler=sampler_name, variant=variant)
                    if key in previous:
                        last_length, last_seconds = previous[key]
                        power = 1 if variant == "fast" else 2   # O(L·q) vs O((L·q)²) per chain
                        predicted = last_seconds * (length / last_length) ** power
                        if predicted > args.max_step_seconds:
                            records.append(dict(record, skipped=True, skip_reason=(
                                f"skipped on this device: one step predicted to take "
                                f"{predicted:.0f} s (> --max-step-seconds "
                                f"{args.max_step_seconds:g}), scaled from L = {last_length}")))
                            print(f"skip    {sampler_name:5s} {variant:8s} L={length:3d} "
                                  f"chains={chains:5d} (~{predicted:.0f} s/step)", flush=True)
                            previous[key] = (length, predicted)
                            continue
                    sampler = (GWGSampler(local_fields=variant == "fast") if sampler_name == "gwg"
                               else GibbsSampler("random", local_fields=variant == "fast"))
                    generator = torch.Generator(device=device).manual_seed(1)
                    x0 = torch.randint(Q, (chains, length), generator=generator, device=device)
                    memory.reset()
                    steps, seconds, on_warm_up = time_steps(sampler, model, x0, generator,
                                                args.min_seconds, args.max_steps,
                                                args.max_step_seconds, device)
                    previous[key] = (length, seconds / steps)
                    chain_steps = steps * chains / seconds
                    record.update(
                        steps=steps, seconds=seconds, steps_per_second=steps / seconds,
                        chain_steps_per_second=chain_steps,
                        peak_memory_bytes=memory.read(), peak_memory_kind=memory.kind,
                        **bytes_moved(sampler_name, variant, length, chains))
                    if sampler_name == "gibbs":
                        record["site_updates_per_second"] = chain_steps
                    if on_warm_up:
                        record["timing_note"] = "slow configuration: timed on its first step only"
                    records.append(record)
                    print(f"{sampler_name:5s} {variant:8s} L={length:3d} chains={chains:5d}: "
                          f"{chain_steps:12.0f} chain-steps/s ({steps} steps, {seconds:.2f} s)",
                          flush=True)
        del model
    add_speedups(records)
    return records


def bytes_moved(sampler: str, variant: str, length: int, chains: int) -> dict:
    """Memory traffic per step, estimated from the operations (not measured)."""
    lq = length * Q
    if variant == "fast":
        per_chain = FAST_PASSES[sampler] * lq * FLOAT_BYTES
        return dict(bytes_per_step_estimate=per_chain * chains,
                    bytes_per_chain_step_estimate=per_chain,
                    bytes_per_chain_step_minimum=MINIMUM_PASSES * lq * FLOAT_BYTES,
                    bytes_note=f"{FAST_PASSES[sampler]} passes over (L, q) float32 per "
                               f"chain-step; a fused kernel needs {MINIMUM_PASSES}")
    if sampler == "gwg":   # x·G forward and backward: G read twice, compute bound
        return dict(bytes_per_step_estimate=2 * lq * lq * FLOAT_BYTES + 8 * chains * lq * 4,
                    flops_per_step=4 * chains * lq * lq,
                    bytes_note="couplings (L·q)² read by the forward and backward matmuls; "
                               "4·B·(L·q)² flops")
    # Gibbs baseline: q full energies per chain, each summing L rows of the couplings.
    per_chain = Q * length * lq * FLOAT_BYTES
    return dict(bytes_per_step_estimate=per_chain * chains,
                bytes_per_chain_step_estimate=per_chain,
                bytes_note="q candidate energies per chain, each gathering L coupling rows")


def add_speedups(records: list[dict]) -> None:
    measured = {(r["sampler"], r["L"], r["chains"], r["variant"]): r for r in records
                if not r.get("skipped")}
    for (sampler, length, chains, variant), record in measured.items():
        baseline = measured.get((sampler, length, chains, "baseline"))
        if variant == "fast" and baseline is not None:
            record["speedup_vs_baseline"] = (record["chain_steps_per_second"]
                                             / baseline["chain_steps_per_second"])


def mixing(args, device: torch.device, base: dict) -> list[dict]:
    side, chains = args.ising_side, 100
    model = LatticeIsingEnergy((side, side), coupling=args.ising_coupling, device=device)
    samplers = {"gibbs": GibbsSampler("random"), "gwg": GWGSampler(),
                "gwg-4-flips": GWGSampler(n_flips=4), "metropolis": MetropolisSampler()}
    records = []
    for name, sampler in samplers.items():
        generator = torch.Generator(device=device).manual_seed(2)
        x0 = torch.randint(2, (chains, side * side), generator=generator, device=device)
        state = sampler.init(model, x0)
        for _ in range(args.ising_burn_in):
            state, _ = sampler.step(model, state, generator)
        trace, changed = [], 0
        synchronize(device)
        start = time.perf_counter()
        while time.perf_counter() - start < args.ising_seconds or len(trace) < 100:
            state, info = sampler.step(model, state, generator)
            trace.append((2 * state.x - 1).float().mean(1))
            changed += info.sites_changed
        trace = torch.stack(trace)
        synchronize(device)
        seconds = time.perf_counter() - start
        ess = effective_sample_size(trace)
        total_ess = float(ess.nansum())
        records.append(dict(
            base, benchmark="mixing", model=f"2-D periodic lattice Ising {side}x{side}",
            coupling=args.ising_coupling, bias=0.0, statistic="mean spin", chains=chains,
            sampler=name, burn_in_steps=args.ising_burn_in, steps=len(trace), seconds=seconds,
            steps_per_second=len(trace) / seconds,
            sites_changed_per_chain_step=float(changed.double().mean()) / len(trace),
            ess_total=total_ess, ess_per_chain_median=float(ess.nanmedian()),
            ess_per_second=total_ess / seconds, ess_per_1000_steps=1000 * total_ess / len(trace)
            / chains))
        print(f"mixing {name:12s}: {len(trace):6d} steps in {seconds:.1f} s, "
              f"ESS {total_ess:9.1f}, ESS/s {total_ess / seconds:9.1f}", flush=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda[:N]")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file [default: results/sampler_throughput_<device>.json]")
    parser.add_argument("--min-seconds", type=float, default=1.0,
                        help="time each configuration for at least this long")
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--max-step-seconds", type=float, default=60.0,
                        help="skip configurations whose single step would take longer")
    parser.add_argument("--ising-side", type=int, default=20)
    parser.add_argument("--ising-coupling", type=float, default=0.3)
    parser.add_argument("--ising-burn-in", type=int, default=4000)
    parser.add_argument("--ising-seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads [default: torch's choice]; 1 is steadier on "
                             "a machine shared with other jobs")
    parser.add_argument("--note", default=None,
                        help="free text stored in every record (machine load, …)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-mixing", action="store_true")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    out = args.out or RESULTS / f"sampler_throughput_{device.type}.json"
    status = git("status", "--porcelain")
    base = dict(command=shlex.join([Path(sys.executable).name, *sys.argv]),
                git_commit=git("rev-parse", "HEAD"),
                git_dirty=None if status is None else bool(status),
                device=device_description(device), torch=torch.__version__,
                date=time.strftime("%Y-%m-%d"), run_note=args.note)
    records = []
    out.parent.mkdir(parents=True, exist_ok=True)
    for stage, skipped in ((throughput, args.skip_throughput), (mixing, args.skip_mixing)):
        if not skipped:
            records += stage(args, device, base)
            write_json(out, records)  # each stage's as it ends
    print(f"wrote {len(records)} records to {out}")
    for record in records:
        if "speedup_vs_baseline" in record:
            print(f"speed-up {record['sampler']:5s} L={record['L']:3d} "
                  f"chains={record['chains']:5d}: {record['speedup_vs_baseline']:.1f}x")


if __name__ == "__main__":
    main()
