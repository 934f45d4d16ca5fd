"""``evalkit export …`` / ``evalkit import …``: runs in and out of the store. Parquet lives here; inspect-ai
logs join the same groups from cli.ecosystem."""

from __future__ import annotations

import click

from evalkit.cli.options import db_option, default_db


@click.group("export")
def export_group() -> None:
    """Write a stored run out of the store (Parquet, or inspect-ai logs)."""


@export_group.command("parquet")
@click.argument("run_id", default="latest")
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False),
              help="Folder to write (one Parquet file per table and manifest.json).")
@db_option()
def export_parquet(run_id: str, output: str, db: str | None) -> None:
    """Export RUN_ID (id, unique prefix or 'latest') as Parquet files."""
    from evalkit.store import Store
    from evalkit.store.parquet import export_run

    with Store(db or default_db(), read_only=True) as store:
        manifest = export_run(store, store.resolve_run_id(run_id), output)
    click.echo(f"run {manifest['run_id']} exported to {output} ({manifest['rows']['results']:,} results)")


@click.group("import")
def import_group() -> None:
    """Bring runs into the store (Parquet exports, or inspect-ai logs)."""


@import_group.command("parquet")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@db_option()
@click.option("--run-id", "run_id", help="Id of the imported run (default: the exported id; a new id when merging).")
def import_parquet(folders: tuple[str, ...], db: str | None, run_id: str | None) -> None:
    """Import exported FOLDERS: one run as it was, or several shards of one run merged into a new run."""
    from evalkit.analysis.metrics import recompute_run_metrics
    from evalkit.store import Store
    from evalkit.store.parquet import import_runs

    with Store(db or default_db()) as store:
        imported = import_runs(store, list(folders), run_id)
        if imported.merged:
            recompute_run_metrics(store, imported.run_id)
        target = imported.run_id
        n = store.count_results(target)
    verb = "merged" if len(folders) > 1 else "imported"
    click.echo(f"{verb} {len(folders)} export(s) into run {target} ({n:,} results); see: evalkit show {target}")


COMMANDS = [export_group, import_group]
