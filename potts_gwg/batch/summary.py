"""The batch summary: one row per family (pandas), as TSV and JSON, and a precision picture."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import pandas as pd

from ..atomic import atomic_open, atomic_path
from ..plot import new_figure

SUMMARY_TSV = "summary.tsv"
SUMMARY_JSON = "summary.json"
SUMMARY_PNG = "summary.png"
TABLE_DIGEST_KEY = "potts-gwg summary table sha256"  # in summary.png: the table it shows
MAX_BARS = 60  # more families: a histogram instead of one group of bars each
SEPARATIONS = (6, 12, 24)
TOPS = ("L", "L/2", "L/5")
PRECISION_COLUMNS = [f"top_{top.replace('/', '')}_sep{separation}"
                     for separation in SEPARATIONS for top in TOPS]
COLUMNS = (["id", "status", "L", "N", "Neff", "method", "seed", "device", "threads", "wall_s",
            "fit_s", "peak_memory_bytes", "peak_rss_bytes", "peak_gpu_bytes"] + PRECISION_COLUMNS +
           ["iterations", "converged", "structure_identity", "exit_code", "reason", "message",
            "resumed", "host", "started", "finished", "settings_hash"])


def summary_frame(records: list[dict]) -> pd.DataFrame:
    """Flatten result records (precision table -> top_L_sep6, …) into the summary table."""
    rows = []
    for record in records:
        row = {key: record.get(key) for key in COLUMNS}
        for entry in record.get("precision") or []:
            key = f"top_{str(entry['top']).replace('/', '')}_sep{entry['min_separation']}"
            if key in row:
                row[key] = entry["precision"]
        gpu = record.get("peak_gpu_bytes")
        row["peak_memory_bytes"] = gpu if gpu else record.get("peak_rss_bytes")
        row["resumed"] = bool(record.get("resumed", False))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("L", "N", "seed", "threads", "iterations", "exit_code", "peak_memory_bytes",
                   "peak_rss_bytes", "peak_gpu_bytes"):
        frame[column] = frame[column].astype("Int64")
    for column in ["Neff", "wall_s", "fit_s", "structure_identity"] + PRECISION_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def write_summary(outdir: str | os.PathLike, records: list[dict], plot: bool = True
                  ) -> pd.DataFrame:
    """Write ``summary.tsv`` and ``summary.json`` (and ``summary.png``) atomically. The
    picture is redrawn only when it does not show this table (a rerun with nothing to do spent
    seconds drawing the same picture again): it records the table's digest."""
    outdir = Path(outdir)
    frame = summary_frame(records)
    table = frame.to_csv(sep="\t", index=False, float_format="%.6g", lineterminator="\n")
    digest = hashlib.sha256(table.encode()).hexdigest()
    with atomic_open(outdir / SUMMARY_TSV) as stream:
        stream.write(table)
    with atomic_open(outdir / SUMMARY_JSON) as stream:
        stream.write(frame.to_json(orient="records", indent=2))
        stream.write("\n")
    if plot and not _shows_table(outdir / SUMMARY_PNG, digest):
        summary_png(outdir / SUMMARY_PNG, frame, digest)
    return frame


def _shows_table(picture: Path, digest: str) -> bool:
    """Whether the PNG ``picture`` was drawn from the table with this digest (its text chunk
    ``key\\0value`` is stored uncompressed)."""
    try:
        return f"{TABLE_DIGEST_KEY}\0{digest}".encode() in picture.read_bytes()
    except OSError:
        return False


def summary_png(path: str | os.PathLike, frame: pd.DataFrame, table_digest: str | None = None
                ) -> Path:
    """Top-L, L/2, L/5 precision (|i-j| >= 6) per family, and top-L precision against L;
    ``table_digest`` (of the table drawn) goes into the PNG's metadata."""
    scored = frame[frame["status"].eq("done") & frame["top_L_sep6"].notna()]
    scored = scored.sort_values("L", kind="stable")
    bars = len(scored) <= MAX_BARS
    width = min(20.0, max(8.0, 4.0 + 0.45 * len(scored))) if bars else 11.0
    figure = new_figure(figsize=(width, 4.6), layout="constrained")
    per_family, versus_length = figure.subplots(
        1, 2, width_ratios=[max(1.2, len(scored) / 6) if bars else 1.2, 1])
    if scored.empty:
        for axes in (per_family, versus_length):
            axes.text(0.5, 0.5, "no family evaluated against a structure", ha="center",
                      va="center", transform=axes.transAxes)
    elif not bars:
        per_family.hist([scored["top_L_sep6"], scored["top_L5_sep6"].dropna()],
                        bins=20, range=(0, 1), label=["top L", "top L/5"])
        per_family.set_xlabel("precision, |i-j| >= 6")
        per_family.set_ylabel("families")
        per_family.legend(fontsize=8)
        versus_length.scatter(scored["L"], scored["top_L_sep6"], s=8, label="top L")
        versus_length.set_xlabel("L (query columns)")
        versus_length.legend(fontsize=8)
    else:
        positions = range(len(scored))
        bar_width = 0.27
        for offset, (column, label) in enumerate((("top_L_sep6", "top L"),
                                                  ("top_L2_sep6", "top L/2"),
                                                  ("top_L5_sep6", "top L/5"))):
            per_family.bar([position + (offset - 1) * bar_width for position in positions],
                           scored[column].fillna(0.0), width=bar_width, label=label)
        per_family.set_xticks(list(positions))
        per_family.set_xticklabels([f"{name}\nL={length}" for name, length
                                    in zip(scored["id"], scored["L"])], rotation=45,
                                   ha="right", fontsize=8)
        mean = scored["top_L_sep6"].mean()
        per_family.axhline(mean, color="0.4", linestyle="--", linewidth=1,
                           label=f"mean top L = {mean:.3f}")
        per_family.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2,
                          frameon=False)
        versus_length.scatter(scored["L"], scored["top_L_sep6"], label="top L")
        versus_length.scatter(scored["L"], scored["top_L5_sep6"], marker="^", label="top L/5")
        for name, length, value in zip(scored["id"], scored["L"], scored["top_L_sep6"]):
            if not math.isnan(value):
                versus_length.annotate(name, (length, value), fontsize=7,
                                       xytext=(3, 3), textcoords="offset points")
        versus_length.set_xlabel("L (query columns)")
        versus_length.legend(fontsize=8)
    if bars:
        per_family.set_ylabel("precision, |i-j| >= 6")
        per_family.set_ylim(0, 1.05)
    versus_length.set_ylim(0, 1.05)
    versus_length.set_ylabel("precision, |i-j| >= 6")
    failed = int(frame["status"].eq("failed").sum())
    pending = int((~frame["status"].isin(["done", "failed"])).sum())
    figure.suptitle(f"{len(scored)} families evaluated, {failed} failed"
                    f"{f', {pending} not run' if pending else ''}")
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=110,
                       metadata={TABLE_DIGEST_KEY: table_digest} if table_digest else None)
    return Path(path)
