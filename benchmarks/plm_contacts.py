"""Benchmark: `potts-gwg fit --method plm` + `contacts --pdb` on the 9 dev families.

Each family runs as the user would run it (the CLI, in a child process, so wall time and peak
memory are the command's own). With --ccmpred PATH, CCMpred runs on the same trimmed,
query-first alignment in the same run, as the baseline (threads: --ccmpred-threads), and its
output matrix is scored by the same evaluation code.

    python benchmarks/plm_contacts.py --device cpu --threads 2 --ccmpred /path/to/ccmpred \
        --ccmpred-threads 2 -o benchmarks/results/plm_contacts_cpu.json [-- extra fit options]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (RESULTS, git_commit, machine_description, native_distances, positive_int,
                    select_families, timed_run, write_json)

from potts_gwg.alphabet import PROTEIN_ALPHABET
from potts_gwg.contacts import contact_scores
from potts_gwg.evaluation import precision_table
from potts_gwg.io.model_file import load_model
from potts_gwg.io.msa import read_alignment
from potts_gwg.io.structure import query_distances

PCD_META = ("init", "plm_seconds", "pcd_seconds", "stop_reason", "pearson_pairs",
            "pearson_sites", "acceptance", "hyperparameters")


def precision_summary(table: list[dict], prefix: str = "") -> dict:
    return {f"{prefix}P@{row['top']}_sep{row['min_separation']}": row["precision"]
            for row in table}


def native_summary(family, scores: np.ndarray) -> dict:
    """Precision against the data's native_contacts.tsv / mapping.tsv (keys ``native_…``)."""
    return precision_summary(precision_table(scores, native_distances(family)), "native_")


def run_potts_gwg(family, device, threads, workdir: Path, method: str = "plm",
                  extra: tuple[str, ...] = ()) -> dict:
    """`fit --method METHOD [extra]` then `contacts --pdb --json`, as child processes."""
    model = workdir / f"{family.id}.{method}.npz"
    fit = ["potts-gwg", "fit", str(family.msa), "-o", str(model), "--method", method,
           "--device", device, "--seed", "0", "-q", *family.query_arguments, *extra]
    if threads:
        fit += ["--threads", str(threads)]
    status, stdout, stderr, seconds, peak = timed_run(fit)
    if status != 0:
        return {"status": "failed", "command": shlex.join(fit), "error": stderr.strip()[-4000:]}
    contacts = ["potts-gwg", "contacts", str(model), "--pdb", str(family.structure), "--json"]
    if family.chain:
        contacts += ["--chain", family.chain]
    c_status, c_stdout, c_stderr, c_seconds, c_peak = timed_run(contacts)
    if c_status != 0:
        return {"status": "failed", "command": shlex.join(contacts), "error": c_stderr.strip()}
    summary = json.loads(c_stdout)
    fitted = load_model(model)
    meta = fitted.meta
    return {"status": "ok", "command": f"{shlex.join(fit)} && {shlex.join(contacts)}",
            "fit_stdout": stdout.strip(), "wall_seconds_fit": round(seconds, 2),
            "wall_seconds_contacts": round(c_seconds, 2),
            "wall_seconds": round(seconds + c_seconds, 2), "peak_memory_bytes": max(peak, c_peak),
            "n_effective": meta["n_effective"], "iterations": meta["iterations"],
            "converged": meta["converged"],
            **{key: meta[key] for key in PCD_META if key in meta},
            **precision_summary(summary["precision"]),
            **native_summary(family, contact_scores(fitted.J, fitted.alphabet))}


def write_aln(alignment, path: Path) -> None:
    """Trimmed, query-first PSICOV .aln (CCMpred's input)."""
    letters = np.frombuffer(PROTEIN_ALPHABET.encode(), dtype=np.uint8)
    order = [alignment.query_record] if alignment.query_record is not None else []
    rows = order + [n for n in range(alignment.n_sequences) if n not in order]
    with open(path, "w") as stream:
        if alignment.query_record is None:  # query from a separate file: put it first
            stream.write(alignment.query_sequence + "\n")
        stream.writelines(letters[alignment.indices[n]].tobytes().decode() + "\n" for n in rows)


def run_ccmpred(family, executable, threads, workdir: Path) -> dict:
    alignment = read_alignment(family.msa, **_query_kwargs(family))
    aln = workdir / f"{family.id}.aln"
    write_aln(alignment, aln)
    matrix_path = workdir / f"{family.id}.ccmpred.mat"
    command = [executable, "-t", str(threads), str(aln), str(matrix_path)]
    status, _stdout, stderr, seconds, peak = timed_run(command)
    if status != 0:
        return {"status": "failed", "command": shlex.join(command), "error": stderr[-500:]}
    scores = np.loadtxt(matrix_path)
    distances, _mapping, _residues = query_distances(alignment.query_sequence, family.structure,
                                                     family.chain)
    return {"status": "ok", "command": shlex.join(command), "wall_seconds": round(seconds, 2),
            "peak_memory_bytes": peak, **precision_summary(precision_table(scores, distances)),
            **native_summary(family, scores)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, default=None)
    parser.add_argument("--families", help="comma-separated ids (default: all 9)")
    parser.add_argument("--ccmpred", help="path to a CCMpred executable for the baseline")
    parser.add_argument("--ccmpred-threads", default="2",
                        help="comma-separated thread counts, one CCMpred run each (e.g. 1,2)")
    parser.add_argument("-o", "--output", type=Path,
                        default=RESULTS / "plm_contacts.json")
    parser.add_argument("fit_options", nargs="*",
                        help="extra `potts-gwg fit` options (after --), e.g. -- --tolerance 0.001")
    arguments = parser.parse_args()
    families = select_families(arguments.families)
    records = []
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        for family in families:
            _alignment, base = family_base(family)
            record = {**base, "method": "potts-gwg plm", "device": arguments.device,
                      "threads": arguments.threads,
                      "fit_options": arguments.fit_options,
                      **run_potts_gwg(family, arguments.device, arguments.threads, workdir,
                                      extra=tuple(arguments.fit_options))}
            records.append(record)
            print(_line(record), flush=True)
            for threads in (arguments.ccmpred_threads.split(",") if arguments.ccmpred else []):
                baseline = {**base, "method": f"ccmpred -t {threads}", "device": "cpu",
                            "threads": int(threads),
                            **run_ccmpred(family, arguments.ccmpred, int(threads), workdir)}
                records.append(baseline)
                print(_line(baseline), flush=True)
            write_json(arguments.output, {"benchmark": "plm_contacts",  # after every family
                                          "command": shlex.join(sys.argv), "records": records})
    print(f"wrote {arguments.output}")
    _print_means(records)


def family_base(family) -> tuple:
    """The family's alignment and the fields every record of it carries."""
    alignment = read_alignment(family.msa, **_query_kwargs(family))
    return alignment, {"family": family.id, "L": alignment.length, "N": alignment.n_sequences,
                       "git_commit": git_commit(), "machine": machine_description(), "seed": 0}


def _query_kwargs(family) -> dict:
    options = dict(zip(family.query_arguments[::2], family.query_arguments[1::2]))
    return {"query": options.get("--query"),
            "query_index": int(options["--query-index"]) if "--query-index" in options else None,
            "query_file": options.get("--query-file")}


def _line(record: dict) -> str:
    if record.get("status") != "ok":
        return f"{record['family']:14s} {record['method']:14s} FAILED {record.get('error')}"
    return (f"{record['family']:14s} {record['method']:14s} L={record['L']:4d} "
            f"P@L={record['P@L_sep6']:.3f} P@L/5={record['P@L/5_sep6']:.3f} "
            f"P@L(24)={record['P@L_sep24']:.3f} {record['wall_seconds']:7.1f} s")


def _print_means(records: list[dict]) -> None:
    for method in dict.fromkeys(record["method"] for record in records):
        ok = [record for record in records if record["method"] == method
              and record.get("status") == "ok"]
        if ok:
            means = {key: np.mean([record[key] for record in ok])
                     for key in ("P@L_sep6", "P@L/5_sep6", "P@L_sep24", "native_P@L_sep6")
                     if all(key in record for record in ok)}
            print(f"mean {method}: " + " ".join(f"{k}={v:.3f}" for k, v in means.items())
                  + f" over {len(ok)} families")


if __name__ == "__main__":
    main()
