"""Benchmark: maximum-likelihood fits (`fit --method gwg|gibbs`) against PLM on the dev families.

Per family, in one run and as child processes (wall time and peak memory are the commands'):
PLM with its defaults (the baseline); GWG-PCD with the given settings, started from that PLM
model (``--init FILE``, the same start as the default ``--init plm``; its wall time excludes
the PLM fit); Gibbs-PCD from the same start with ``--max-time`` set to GWG's PCD time, so the
two samplers get equal wall time. Every fit is scored by `contacts --pdb --json`. The targets
(issue 5): GWG mean top-L precision (|i−j| ≥ 6) above PLM's over the families with L ≥ 150,
and no family more than 0.02 below PLM.

    python benchmarks/pcd_contacts.py --device cpu --threads 2 \
        -o benchmarks/results/pcd_contacts_cpu.json [-- extra fit options for gwg/gibbs]
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

from common import RESULTS, positive_int, select_families, write_json
from plm_contacts import _line, family_base, run_potts_gwg

LONG = 150  # the "long proteins": L >= 150


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, default=None)
    parser.add_argument("--families", help="comma-separated ids (default: all 9)")
    parser.add_argument("--gibbs-max-length", type=int, default=None,
                        help="run the equal-time Gibbs-PCD comparison only for L up to this "
                             "(default: every family; 0: none)")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS / "pcd_contacts.json")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                        help="only merge the records of earlier runs (e.g. families run in "
                             "parallel processes; for the same family and method the later "
                             "file wins) into --output, with a new summary")
    parser.add_argument("fit_options", nargs="*",
                        help="extra `potts-gwg fit` options for the gwg/gibbs runs (after --)")
    arguments = parser.parse_args()
    if arguments.merge:
        runs = [json.loads(path.read_text()) for path in arguments.merge]
        latest = {(record["family"], record["method"]): record  # a later run replaces
                  for run in runs for record in run["records"]}
        write(arguments.output, [run["command"] for run in runs], list(latest.values()))
        return
    families = select_families(arguments.families)
    extra = tuple(arguments.fit_options)
    records = []
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        for family in families:
            alignment, base = family_base(family)
            base.update(device=arguments.device, threads=arguments.threads)
            # The ML fits start from this PLM model (--init FILE): the same start as the
            # default --init plm, without refitting PLM for every run.
            start = ("--init", str(workdir / f"{family.id}.plm.npz"))
            for method, options in (("plm", ()), ("gwg", (*start, *extra))):
                record = {**base, "method": f"potts-gwg {method}",
                          **run_potts_gwg(family, arguments.device, arguments.threads,
                                          workdir, method, options)}
                records.append(record)
                print(_line(record), _pcd_details(record), flush=True)
            gwg = records[-1]
            limit = arguments.gibbs_max_length
            if gwg.get("status") == "ok" and (limit is None or alignment.length <= limit):
                budget = ("--max-time", f"{gwg['pcd_seconds']:.3f}", "--max-iterations",
                          "1000000", "--target-pearson", "1")
                record = {**base, "method": "potts-gwg gibbs (equal time)",
                          **run_potts_gwg(family, arguments.device, arguments.threads,
                                          workdir, "gibbs", (*start, *extra, *budget))}
                records.append(record)
                print(_line(record), _pcd_details(record), flush=True)
            write(arguments.output, shlex.join(sys.argv), records)  # after every family
    print(json.dumps(summarise(records), indent=1))


def write(path: Path, command, records: list[dict]) -> None:
    write_json(path, {"benchmark": "pcd_contacts", "command": command,
                      "summary": summarise(records), "records": records})
    print(f"wrote {path}", flush=True)


def _pcd_details(record: dict) -> str:
    if "pearson_pairs" not in record:
        return ""
    return (f" {record['iterations']} updates ({record['stop_reason']}), Pearson C "
            f"{record['pearson_pairs']:.3f}, PCD {record['pcd_seconds']:.1f} s")


def summarise(records: list[dict]) -> dict:
    """Mean top-L precisions per method over all and over long families; the targets."""
    ok = [record for record in records if record.get("status") == "ok"]
    by_method: dict[str, dict[str, float]] = {}
    for record in ok:
        by_method.setdefault(record["method"], {})[record["family"]] = record["P@L_sep6"]
    lengths = {record["family"]: record["L"] for record in ok}
    summary = {}
    for method, precisions in by_method.items():
        long = [value for family, value in precisions.items() if lengths[family] >= LONG]
        summary[method] = {"mean_P@L_sep6": round(float(np.mean(list(precisions.values()))), 4),
                           f"mean_P@L_sep6_L>={LONG}": round(float(np.mean(long)), 4)
                           if long else None, "families": len(precisions)}
    plm, gwg = by_method.get("potts-gwg plm", {}), by_method.get("potts-gwg gwg", {})
    shared = sorted(set(plm) & set(gwg))
    if shared:
        long = [family for family in shared if lengths[family] >= LONG]
        summary["targets"] = {
            "gwg_minus_plm_per_family": {family: round(gwg[family] - plm[family], 4)
                                         for family in shared},
            "long_families_gwg_above_plm": bool(long) and float(np.mean(
                [gwg[f] for f in long])) > float(np.mean([plm[f] for f in long])),
            "others_within_0.02_of_plm": all(gwg[f] >= plm[f] - 0.02 for f in shared
                                             if lengths[f] < LONG)}
    return summary


if __name__ == "__main__":
    main()
