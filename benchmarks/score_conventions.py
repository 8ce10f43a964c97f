"""Does the reading of "Frobenius norm of the zero-sum-gauged 20 × 20 block" matter?

The contact score (../shared/docs/README.md) leaves one choice open: gauge the 20 × 20
amino-acid block itself (potts-gwg's ``contacts``), or gauge the whole q × q block (gap
included, as plmDCA does) and then drop the gap, or only subtract the q × q block's mean and
drop the gap (as CCMpred's ``sum_submatrices`` does). PLM precision sits about one contact
below CCMpred's over the 9 dev families; this scores the same default PLM models all three
ways (APC on each) to see whether the convention explains it.

    python benchmarks/score_conventions.py --models DIR -o RESULT.json [--families A,B]

Models missing from DIR are fitted first with ``potts-gwg fit`` (defaults, seed 0; the
model is the same on any number of threads).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from common import (
    RESULTS,
    git_commit,
    machine_description,
    select_families,
    timed_run,
    write_json,
)

from potts_gwg.contacts import GAP, average_product_correction, contact_scores, zero_sum_gauge
from potts_gwg.evaluation import precision_table
from potts_gwg.io.model_file import load_model
from potts_gwg.io.structure import query_distances

CONVENTIONS = ("gauge_20", "gauge_q_then_drop_gap", "block_mean_q_then_drop_gap")


def amino_acid_blocks(J: np.ndarray, alphabet: str, convention: str) -> np.ndarray:
    """(L, L, 20, 20) float64 blocks whose Frobenius norms are the scores of ``convention``."""
    residues = [index for index, letter in enumerate(alphabet) if letter != GAP]
    couplings = J.astype(np.float64)
    if convention == "gauge_20":
        return zero_sum_gauge(couplings[:, :, residues][:, :, :, residues])
    if convention == "gauge_q_then_drop_gap":
        return zero_sum_gauge(couplings)[:, :, residues][:, :, :, residues]
    centred = couplings - couplings.mean(axis=(2, 3), keepdims=True)
    return centred[:, :, residues][:, :, :, residues]


def scores(J: np.ndarray, alphabet: str, convention: str) -> np.ndarray:
    norms = np.sqrt((amino_acid_blocks(J, alphabet, convention) ** 2).sum(axis=(2, 3)))
    np.fill_diagonal(norms, 0.0)
    return average_product_correction(norms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, required=True,
                        help="folder of <family>.npz PLM models (missing ones are fitted)")
    parser.add_argument("--families", help="comma-separated ids (default: all 9)")
    parser.add_argument("--threads", type=int, default=2, help="threads of the fits")
    parser.add_argument("-o", "--output", type=Path,
                        default=RESULTS / "score_conventions_cpu.json")
    arguments = parser.parse_args()
    arguments.models.mkdir(parents=True, exist_ok=True)
    records = []
    for family in select_families(arguments.families):
        model_path = arguments.models / f"{family.id}.npz"
        fit_command = ["potts-gwg", "fit", str(family.msa), "-o", str(model_path), "--method",
                       "plm", "--device", "cpu", "--seed", "0", "-q", "--threads",
                       str(arguments.threads), *family.query_arguments]
        if not model_path.exists():
            status, _, error, seconds, _ = timed_run(fit_command)
            if status != 0:
                sys.exit(f"{family.id}: the fit failed: {error.strip()}")
            print(f"{family.id}: fitted in {seconds:.1f} s", flush=True)
        model = load_model(model_path)
        distances, _, _ = query_distances(model.meta["query_sequence"], str(family.structure),
                                          family.chain)
        record = {"family": family.id, "L": model.length, "fit_command": " ".join(fit_command),
                  "model_meta": model.meta}
        for convention in CONVENTIONS:
            ranked = scores(model.J, model.alphabet, convention)
            if convention == "gauge_20":  # the baseline is exactly what `contacts` ranks by
                assert np.allclose(ranked, contact_scores(model.J, model.alphabet))
            table = precision_table(ranked, distances)
            record[convention] = {f"P@{row['top']}_sep{row['min_separation']}": row["precision"]
                                  for row in table}
        records.append(record)
        print(family.id, {convention: round(record[convention]["P@L_sep6"], 4)
                          for convention in CONVENTIONS}, flush=True)
    means = {convention: float(np.mean([record[convention]["P@L_sep6"] for record in records]))
             for convention in CONVENTIONS}
    print("mean top-L (|i-j| >= 6):", {name: round(value, 4) for name, value in means.items()})
    write_json(arguments.output, {
        "benchmark": "score_conventions", "command": " ".join(sys.argv),
        "git_commit": git_commit(), "machine": machine_description(),
        "mean_P@L_sep6": means, "records": records})


if __name__ == "__main__":
    main()
