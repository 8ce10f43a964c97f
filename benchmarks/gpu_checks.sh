#!/usr/bin/env bash
# Every GPU check of issues 3 and 5 (and the gpu-marked tests) in one prepared run, for a
# session that is lent a GPU for a few minutes. Writes at most 8 files into OUTDIR (the device
# tool returns 8): gpu_checks.log, pytest_gpu.xml and one JSON per benchmark section.
#
#   bash benchmarks/gpu_checks.sh OUTDIR [SECTION ...]
#
# Sections (default: all, in this order, most important first; each under its own time limit,
# 570 s together, though all of them took 247 s on an H200 (2026-12-04), so one device call of
# 600 s holds them with the install; a lent machine has ~15 min in all, its start included, so
# plan on one call). Every benchmark writes its JSON as
# it goes: a section cut by its limit keeps what it finished.
#   tests      pytest -m gpu                                                (limit 90 s)
#   plm        plm_contacts.py on DHFR_1RX2 and CRY2_4I6E (CRY2 fit+contacts <= 10 s target)  (60 s)
#   synthetic  plm_synthetic.py, L = 1000, N = 5000, 30 iterations (must run on an 80 GB GPU;
#              time per iteration, peak memory against the estimate)            (60 s)
#   pcd        pcd_contacts.py, GWG-PCD defaults with --max-time 60 on DHFR_1RX2 and CRY2_4I6E
#              (Pearson C >= 0.95 in <= 10 s and <= 60 s targets)                 (180 s)
#   sampler    sampler_throughput.py (>= 1e7 GWG chain-steps/s at L = 450)       (60 s)
#   memory     fit_memory.py, L = 300: peak device memory of PLM and PCD fits against the
#              estimate the fit checks before allocating                          (90 s)
#   startup    startup_times.py: `import torch`, that plus the device's start, `potts-gwg
#              --version`, each a fresh process: what no fit can shorten          (30 s)
# GPU_CHECKS_PLM_FAMILIES / GPU_CHECKS_PCD_FAMILIES (comma-separated) replace the families of
# plm / pcd (a re-measurement that must fit in what is left of a lease).
# GPU_CHECKS_DEVICE=cpu GPU_CHECKS_QUICK=1 runs the same plumbing on a CPU with tiny sizes
# (a rehearsal before spending device time; benchmarks/README.md "GPU session").
# The dev families are read from ../shared/data, as everywhere in benchmarks/.
set -uo pipefail
# Tracebacks and a native-crash dump come back in the log: there is no second try to debug.
export POTTS_GWG_DEBUG=1 PYTHONFAULTHANDLER=1
out=${1:?usage: gpu_checks.sh OUTDIR [SECTION ...]}
shift
if [ $# -eq 0 ]; then
    set -- tests plm synthetic pcd sampler memory startup
fi
sections=("$@")
device=${GPU_CHECKS_DEVICE:-cuda}
quick=${GPU_CHECKS_QUICK:-0}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
log="$out/gpu_checks.log"
python=python3
if $python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    python="python3 -P"  # keep the checkout's potts_gwg/ off sys.path: test the installed one
fi

say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$log"; }

section() {  # section NAME LIMIT_SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    say "== $name (limit ${limit} s): $*"
    local start=$SECONDS
    timeout --signal=TERM --kill-after=10 "$limit" "$@" >>"$log" 2>&1
    local status=$?
    say "== $name: exit $status after $((SECONDS - start)) s"
}

say "gpu_checks: sections ${sections[*]} on $device (quick=$quick)"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
  $python -c 'import torch, potts_gwg; print("torch", torch.__version__, "cuda",
torch.cuda.is_available(), "potts_gwg", potts_gwg.__file__)'
} >>"$log" 2>&1

if [ "$quick" = 1 ]; then
    plm_families=PF00018_2O9S pcd_families=PF00018_2O9S
    synthetic=(--length 60 --sequences 300 --max-iterations 5)
    pcd_options=(--max-iterations 20)
    sampler=(--min-seconds 0.1 --max-steps 3 --max-step-seconds 0.5 --skip-mixing)
    memory_lengths=60
else
    plm_families=${GPU_CHECKS_PLM_FAMILIES:-DHFR_1RX2,CRY2_4I6E}
    pcd_families=${GPU_CHECKS_PCD_FAMILIES:-DHFR_1RX2,CRY2_4I6E}
    synthetic=(--length 1000 --sequences 5000 --max-iterations 30)
    pcd_options=(--max-time 60)
    sampler=(--min-seconds 0.3 --max-step-seconds 5 --ising-burn-in 500 --ising-seconds 3)
    memory_lengths=300
fi

for name in "${sections[@]}"; do
    case $name in
    tests)
        section tests 90 $python -m pytest -q -m gpu -p no:cacheprovider \
            "$here/../tests" --junit-xml="$out/pytest_gpu.xml"
        ;;
    plm)
        section plm 60 $python "$here/plm_contacts.py" --device "$device" \
            ${plm_families:+--families "$plm_families"} -o "$out/plm_contacts_$device.json"
        ;;
    synthetic)
        section synthetic 60 $python "$here/plm_synthetic.py" --device "$device" \
            "${synthetic[@]}" -o "$out/plm_synthetic_$device.json"
        ;;
    pcd)
        section pcd 180 $python "$here/pcd_contacts.py" --device "$device" \
            --families "$pcd_families" --gibbs-max-length 0 -o "$out/pcd_contacts_$device.json" \
            -- "${pcd_options[@]}"
        ;;
    sampler)
        section sampler 60 $python "$here/sampler_throughput.py" --device "$device" \
            "${sampler[@]}" --out "$out/sampler_throughput_$device.json"
        ;;
    memory)
        section memory 90 $python "$here/fit_memory.py" --device "$device" \
            --lengths "$memory_lengths" -o "$out/fit_memory_$device.json"
        ;;
    startup)
        section startup 30 $python "$here/startup_times.py" --device "$device" \
            -o "$out/startup_times_$device.json"
        ;;
    *)
        say "unknown section $name (tests, plm, synthetic, pcd, sampler, memory, startup)"
        ;;
    esac
done
say "gpu_checks: done"
