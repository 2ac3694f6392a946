"""``python manage.py ingest_file PATH``: load a JSON, NDJSON or CSV file through the pipeline.

``--action`` is the default action of the file's records (insert, upsert, update or delete; a
record's own ``"action"``, or a CSV ``action`` cell, wins). Shows a progress bar with records/s
(on stderr), then a table of received / inserted / updated / deleted / skipped per type and the
first skipped records (in file order) with their reasons; ``--errors FILE`` writes every skipped
record as a line of JSON. See ``ingest.files`` for how the file is read, in up to three passes.
"""

import json
from contextlib import ExitStack
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from common.ops.observability import quiet_batch_logs
from ingest import files
from ingest.actions import ACTIONS, INSERT


class RateColumn(ProgressColumn):
    """Records per second since the start."""

    def render(self, task) -> Text:
        elapsed = task.elapsed or 0
        rate = task.completed / elapsed if elapsed > 0 else 0
        return Text(f"{rate:,.0f} records/s", style="progress.data.speed")


def action_name(value: str) -> str:
    """``--action`` as ``?action=`` reads it: any case, spaces around it ignored."""
    return value.strip().lower()


class Command(BaseCommand):
    help = (
        "Ingest a .json batch, an .ndjson file (a typed record per line) or a .csv of one type: "
        "insert, upsert, update or delete its records (--action, or each record's own "
        '"action"), in the phases of POST /ingest/ across the whole file.'
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument(
            "--format", choices=["json", "ndjson", "csv"], help="default: from the file name"
        )
        parser.add_argument(
            "--type",
            dest="type_name",
            choices=["users", "products", "orders"],
            help="what a CSV file holds (default: from its name, e.g. users.csv)",
        )
        parser.add_argument(
            "--action",
            type=action_name,
            choices=ACTIONS,
            default=INSERT,
            help="what to do with a record that names no action of its own (default %(default)s)",
        )
        parser.add_argument(
            "--chunk",
            type=int,
            default=files.DEFAULT_CHUNK_RECORDS,
            help="records per pipeline run (default %(default)s)",
        )
        parser.add_argument("--errors", type=Path, help="write every skipped record to this file")
        parser.add_argument("--show", type=int, default=10, help="skipped records to print")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, path: Path, **options) -> None:
        quiet_batch_logs(options["verbosity"])
        if not path.exists():
            raise CommandError(f"No such file: {path}")
        if not path.is_file():
            raise CommandError(f"{path} is not a regular file (a directory, a pipe...).")
        if options["chunk"] < 1:
            raise CommandError("--chunk must be at least 1.")
        try:
            fmt = files.file_format(path, options["format"])
        except files.FileError as exc:
            raise CommandError(str(exc)) from None
        console = Console(file=self.stdout, width=100, highlight=False)
        progress = Progress(
            TextColumn(f"[bold]{path.name}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=options["no_progress"],
        )
        with ExitStack() as stack:
            errors = stack.enter_context(options["errors"].open("w")) if options["errors"] else None
            stack.enter_context(progress)
            task = progress.add_task("ingest", total=files.estimate_records(path, fmt))

            def on_skip(skip: files.Skip) -> None:
                if errors is not None:
                    errors.write(json.dumps(skip.as_dict(), default=str) + "\n")

            try:
                result = files.ingest_file(
                    path,
                    fmt=fmt,
                    type_name=options["type_name"],
                    action=options["action"],
                    chunk_records=options["chunk"],
                    keep_first=options["show"],
                    on_progress=lambda n: progress.advance(task, n),
                    on_skip=on_skip,
                )
            except files.FileError as exc:
                raise CommandError(str(exc)) from None
            progress.update(task, total=progress.tasks[0].completed)
        self.summary(console, path, result, options["errors"])
        if result.not_written:  # a script must not take an outage for a finished load
            raise CommandError(
                f"{result.not_written:,} valid records were not written because a database "
                "failed (see the skipped records); run the file again once it is back: records "
                "with an id already written are skipped as duplicates."
            )

    def summary(self, console: Console, path: Path, result: files.FileResult, errors) -> None:
        rate = result.records / result.seconds if result.seconds else 0
        records = "1 record" if result.records == 1 else f"{result.records:,} records"
        table = Table(title=f"{path.name}: {records} in {result.seconds:.1f} s ({rate:,.0f}/s)")
        for column in ("type", *files.COUNTS):
            table.add_column(column, justify="left" if column == "type" else "right")
        totals = [0] * len(files.COUNTS)
        for name, counts in result.counts.items():
            values = [counts[column] for column in files.COUNTS]
            totals = [a + b for a, b in zip(totals, values, strict=True)]
            table.add_row(name, *(f"{value:,}" for value in values))
        table.add_row("total", *(f"{value:,}" for value in totals), style="bold")
        console.print(table)
        if result.bad_lines:
            lines = "1 line was" if result.bad_lines == 1 else f"{result.bad_lines:,} lines were"
            console.print(f"{lines} not a record and skipped.")
        if result.first_skips:
            console.print(f"First {len(result.first_skips)} skipped:")
            for skip in result.first_skips:  # in file order
                where = f"line {skip.line}" if skip.line is not None else f"index {skip.index}"
                what = skip.type or "line"
                if skip.id is not None:
                    what += f" id {skip.id}"
                if skip.action not in (None, INSERT):  # as POST /ingest/ names only other actions
                    what += f", {skip.action}"
                reasons = "; ".join(
                    f"{field}: {' '.join(messages)}" for field, messages in skip.reasons.items()
                )
                console.print(f"  {where} ({what}): {reasons}", markup=False, soft_wrap=True)
        if errors is not None:
            where = _where_the_skipped_are(result.skipped, errors)
            console.print(where, markup=False, soft_wrap=True)


def _where_the_skipped_are(skipped: int, errors: Path) -> str:
    if not skipped:
        return f"No record was skipped: {errors} is empty."
    if skipped == 1:
        return f"The skipped record is in {errors}."
    return f"All {skipped:,} skipped records are in {errors}."
