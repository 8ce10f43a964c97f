"""``potts-gwg batch``: fit and evaluate many families, resumable, locally or on Ray."""

from __future__ import annotations

import functools
import math

import click

from potts_gwg.io.contact_formats import CONTACT_FORMATS
from potts_gwg.settings import FIT_METHODS

from .options import (
    MSA_FORMATS,
    PCD_ONLY,
    method_settings,
    pcd_options,
    plm_options,
    refuse_pcd_options_for_plm,
    seed_option,
)


@click.command(name="batch")
@click.argument("source", metavar="INPUT", type=click.Path(readable=False))
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False),
              metavar="OUTDIR", help="Folder for OUTDIR/<id>/ per family and the summary.")
@click.option("--method", type=click.Choice(FIT_METHODS), default="plm", show_default=True,
              help="Fit method (as potts-gwg fit).")
@seed_option("Random seed of every fit.", default=0)
@click.option("--format", "msa_format", type=click.Choice(MSA_FORMATS, case_sensitive=False),
              help="MSA format for families whose manifest row gives none (default: sniffed).")
@functools.partial(plm_options, per_method=True)
@pcd_options(batch=True)
@click.option("--max-memory", metavar="SIZE",
              help="Refuse fits estimated to need more than this (binary units: 8G = 8 GiB); "
                   "default: the free memory of the family's device.")
@click.option("--contacts-format", type=click.Choice(CONTACT_FORMATS, case_sensitive=False),
              default="tsv", show_default=True, help="Format of OUTDIR/<id>/contacts.<format>.")
@click.option("--no-apc", is_flag=True, help="Plain Frobenius norms, no APC.")
@click.option("--min-sep", type=click.IntRange(min=1), default=1, show_default=True,
              help="Only pairs with j - i >= K in the contacts files.")
@click.option("--contact-maps", is_flag=True,
              help="Also draw OUTDIR/<id>/contact_map.png for families with a structure.")
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="Families at a time (local: default one per GPU, or 1 on the CPU; "
                   "ray: default no limit).")
@click.option("--devices", default="auto", show_default=True,
              metavar="auto|cpu|cuda|cuda:0,cuda:1|cpu,cuda:0",
              help="Devices of the local workers: one family per GPU at a time, the other "
                   "workers on the CPU. With ray: cpu, cuda or auto (GPU tasks ask for 1 GPU).")
@click.option("--threads", type=click.IntRange(min=1), metavar="T",
              help="Torch threads per worker (default: the cores shared among the CPU "
                   "workers busy at the time, so the last family running takes them all; 1 "
                   "per Ray task).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="local worker processes, or tasks on a Ray cluster.")
@click.option("--ray-address", metavar="ADDR",
              help="Ray cluster to join (e.g. auto or ray://head:10001); default: start a "
                   "local Ray instance.")
@click.option("--shard", metavar="I/N",
              help="Run only shard I of N (families I, I+N, I+2N, … of the manifest), e.g. "
                   "for SLURM job arrays on one OUTDIR.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Skip families finished earlier with the same inputs and settings.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
def command(source, outdir, method, seed, msa_format, theta, lambda_h, lambda_j,
            max_iterations, tolerance, init, chains, steps, learning_rate, lambda_group,
            target_pearson, max_time, max_memory, contacts_format, no_apc, min_sep,
            contact_maps, workers, devices, threads, executor, ray_address, shard, resume,
            quiet):
    """Fit and evaluate every family of INPUT into OUTDIR/<id>/, resumably.

    INPUT is a manifest (TSV or CSV with columns id, msa, and optionally format, query,
    query_index, query_file, structure, chain; paths relative to the manifest's folder) or a
    folder of MSA files (id = file name without its suffixes). query is first, index:N,
    id:NAME, file:PATH or a record name.

    Per family, OUTDIR/<id>/ holds model.npz, contacts.<format> (--contacts-format, default
    tsv), evaluation.json and, with --contact-maps, contact_map.png (with a structure),
    settings.json, log.txt, and done.json written last (error.json if it failed). A rerun
    skips finished families and redoes unfinished or failed ones. OUTDIR/summary.tsv,
    summary.json and summary.png: one row per family (status, L, N, Neff, method, seed,
    device, wall time, peak memory, precisions); OUTDIR/batch.json records the run.

    Exit status 0 when every family finished, 1 when some failed (the others are done), 2
    for a bad manifest or option (nothing run), 3 when another batch run holds OUTDIR (its
    pid and start time are in the message), 4 when a device in --devices is not available.
    """
    # Here, not at the top: they load torch (~2 s), which --help and usage errors do not need.
    from potts_gwg.batch import BatchFailures, BatchOptions, RunSettings, parse_shard, run_batch
    from potts_gwg.fit.memory import parse_size

    refuse_pcd_options_for_plm(method, PCD_ONLY)
    report = (lambda message: None) if quiet else (lambda message: click.echo(message, err=True))
    plm, pcd = method_settings(method, lambda_h, lambda_j, max_iterations, tolerance, chains,
                               steps, learning_rate, lambda_group, target_pearson, max_time)
    settings = RunSettings(
        method=method, seed=seed, theta=theta, plm=plm, pcd=pcd, init=init,
        max_memory=parse_size(max_memory) if max_memory else None,
        contacts_format=contacts_format, apc=not no_apc, min_separation=min_sep,
        contact_map=contact_maps)
    options = BatchOptions(workers=workers, devices=devices, threads=threads, executor=executor,
                           ray_address=ray_address, shard=parse_shard(shard), resume=resume,
                           msa_format=msa_format, progress=not quiet)
    result = run_batch(source, outdir, settings, options, announce=report)
    wanted = set(result.ran) | set(result.skipped)  # (once: a set per record was quadratic)
    selected = [record for record in result.records if record["id"] in wanted]
    done = [record for record in selected if record["status"] == "done"]
    failed = [record for record in selected if record["status"] != "done"]
    precisions = [value for value in (_top_l(record) for record in done) if value is not None]
    mean = f"; mean top-L precision (|i-j|>=6) {sum(precisions) / len(precisions):.3f} over " \
        f"{len(precisions)}" if precisions else ""
    click.echo(f"batch: {len(done)} of {len(selected)} families done ({len(result.skipped)} "
               f"from earlier runs), {len(failed)} failed, {result.seconds:.1f} s{mean} -> "
               f"{result.outdir / 'summary.tsv'}")
    if failed:
        names = ", ".join(record["id"] for record in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise BatchFailures(f"{len(failed)} of {len(selected)} families failed ({names}{more}); "
                            f"see {result.outdir / 'summary.tsv'} and <id>/error.json; a rerun "
                            "redoes them")


def _top_l(record: dict) -> float | None:
    for row in record.get("precision") or []:
        if row["min_separation"] == 6 and row["top"] == "L":
            value = row["precision"]
            return None if value is None or math.isnan(value) else value
    return None
