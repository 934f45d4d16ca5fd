"""``evalkit export finetune``: the next training set from a run — chat JSONL of the chosen samples with the
teacher's answer (or the target) as the assistant turn, guarded against gated held-out sets."""

from __future__ import annotations

from pathlib import Path

import click

from evalkit.cli.options import db_option, default_db
from evalkit.cli.transfer import export_group


@export_group.command("finetune")
@click.argument("run_id", default="latest")
@click.option("--teacher", required=True, help="The model whose answers are learnt (where a sample has no target).")
@click.option("--student", required=True, help="The model being fine-tuned (its mistakes choose the rows).")
@click.option("--where", "where", type=click.Choice(["student_wrong", "regressions", "teacher_correct", "all"]),
              default="student_wrong", show_default=True, help="Which samples: the student's mistakes, the "
              "teacher-right-student-wrong ones, the teacher's successes, or all.")
@click.option("--format", "fmt", type=click.Choice(["openai", "sharegpt"]), default="openai", show_default=True,
              help="Chat JSONL layout: OpenAI messages or ShareGPT conversations.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The JSONL file to write.")
@click.option("--allow-heldout", is_flag=True, help="Include rows whose input is in a held-out set that gated "
              "a model in this store (training on them voids later evaluations on that set).")
@db_option()
def export_finetune(run_id: str, teacher: str, student: str, where: str, fmt: str, output: str,
                    allow_heldout: bool, db: str | None) -> None:
    """Write RUN_ID's chosen samples as a fine-tune set (chat JSONL, one row per sample, with provenance)."""
    from evalkit.interop.finetune import build_export, write_jsonl
    from evalkit.store import Store

    with Store(db or default_db(), read_only=True) as store:
        run = store.resolve_run_id(run_id)
        export = build_export(store, run, teacher, student, where, fmt, allow_heldout)  # type: ignore[arg-type]
    write_jsonl(export, Path(output))
    click.echo(f"{output}: {export.summary()}", err=True)


COMMANDS: list[click.Command] = []  # the subcommand joins the export group of cli.transfer
