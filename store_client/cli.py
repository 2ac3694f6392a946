"""``python -m store_client``: push, export and jobs from the command line.

The service's address and key come from ``--url``/``--token`` or ``STORE_URL``/``STORE_TOKEN``.
Progress is a rich bar on a terminal (records/s and time left); the end is a summary table.
Exit status: 0 when the command did its work (a push with skipped records too: they are in the
errors file), 2 when it could not (the message says why), 130 when interrupted.
"""

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from store_client.client import Client
from store_client.http import ClientError
from store_client.push import Progress as PushProgress
from store_client.push import PushSummary
from store_client.state import StateError

err = Console(stderr=True)
out = Console()


class RecordsPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        elapsed = task.finished_time or task.elapsed or 0
        records = task.fields.get("records", 0)
        rate = records / elapsed if elapsed else 0
        return Text(f"{records:,} records, {rate:,.0f}/s", style="progress.data.speed")


class BarProgress(PushProgress):
    """The push's progress as a rich bar over the bytes of both passes."""

    def __init__(self, quiet: bool) -> None:
        self.bar = Progress(
            TextColumn("[bold]push"),
            BarColumn(),
            TaskProgressColumn(),
            RecordsPerSecond(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=quiet,
        )
        self.task = None
        self.quiet = quiet

    def start(self, total_bytes: int, resumed: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task("push", total=max(total_bytes, 1), records=0)
        if resumed:
            self.note(f"resuming: {resumed} pieces were confirmed before")

    def advance(self, read_bytes: int, records: int) -> None:
        task = self.bar.tasks[0]
        self.bar.update(self.task, advance=read_bytes, records=task.fields["records"] + records)

    def note(self, message: str) -> None:
        # Even with --quiet: a client that waits for a server should say so.
        self.bar.console.print(f"[yellow]{message}", highlight=False)

    def stop(self) -> None:
        self.bar.stop()


def _program() -> str:
    # As the user typed it: `store-client` (the installed command) or `python -m store_client`.
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name and name != "__main__.py" else "python -m store_client"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Read here, not as defaults: the options are shared by the parser and its commands.
    args.url = getattr(args, "url", None) or os.environ.get("STORE_URL")
    args.token = getattr(args, "token", None) or os.environ.get("STORE_TOKEN")
    args.max_wait = getattr(args, "max_wait", 1800.0)
    args.quiet = getattr(args, "quiet", False)
    if not args.url:
        err.print("Give the service's address: --url or STORE_URL (e.g. http://127.0.0.1:8000).")
        return 2
    progress = BarProgress(args.quiet) if args.command == "push" else None
    on_retry = progress.note if progress else (lambda message: err.print(f"[yellow]{message}"))
    try:
        with Client(args.url, args.token, max_wait=args.max_wait, on_retry=on_retry) as client:
            return args.run(client, args, progress)
    except (ClientError, StateError, ValueError, OSError) as exc:
        if progress is not None:
            progress.stop()
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to resume")
        return 130


def _parser() -> argparse.ArgumentParser:
    # The common options are taken before or after the command (push --quiet, --quiet push).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="the service (STORE_URL)")
    common.add_argument("--token", default=argparse.SUPPRESS, help="an API key (STORE_TOKEN)")
    common.add_argument(
        "--max-wait",
        type=float,
        default=argparse.SUPPRESS,
        help="seconds of retries before giving up (1800)",
    )
    common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(
        prog=_program(), description=__doc__.split("\n\n")[0], parents=[common]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    push = commands.add_parser(
        "push", parents=[common], help="send a .ndjson, .csv or .json file, exactly once"
    )
    push.add_argument("file")
    push.add_argument(
        "--type", choices=["users", "products", "orders"], help="the records of a CSV file"
    )
    push.add_argument("--action", choices=["insert", "upsert", "update", "delete"])
    push.add_argument(
        "--async", dest="in_background", action="store_true", help="each piece as a background job"
    )
    push.add_argument("--errors", help="where skipped records go (FILE.errors.ndjson)")
    push.add_argument("--state", help="the state file (FILE.push-state.json)")
    push.add_argument(
        "--piece-records",
        type=_at_least(1),
        help="records per request (at most the server's limit)",
    )
    push.add_argument(
        "--piece-bytes", type=_at_least(2048), help="bytes per request (at most the server's limit)"
    )
    push.set_defaults(run=_push)

    export = commands.add_parser(
        "export", parents=[common], help="a whole table into a file, resumable"
    )
    export.add_argument("type", choices=["users", "products", "orders"])
    export.add_argument("-o", "--output", required=True)
    export.add_argument(
        "--format", choices=["ndjson", "csv"], default=None, help="from -o's suffix, else ndjson"
    )
    export.add_argument("--force", action="store_true", help="replace a finished export")
    export.set_defaults(run=_export)

    jobs = commands.add_parser("jobs", parents=[common], help="this key's background jobs")
    jobs.add_argument("--watch", metavar="ID", help="poll one job until it ends")
    jobs.add_argument(
        "--state", choices=["queued", "running", "succeeded", "failed", "cancelled", "aborted"]
    )
    jobs.set_defaults(run=_jobs)
    return parser


def _push(client: Client, args, progress: BarProgress) -> int:
    summary = client.push(
        args.file,
        progress=progress,
        record_type=args.type,
        action=args.action,
        in_background=args.in_background,
        errors=_path(args.errors),
        state=_path(args.state),
        piece_records=args.piece_records,
        piece_bytes=args.piece_bytes,
    )
    _print_push(summary)
    return 0


def _print_push(summary: PushSummary) -> None:
    if summary.already_done:
        out.print(f"{summary.path} was pushed completely before (its state file says so).")
    table = Table(title=f"push {summary.path}")
    columns = ("received", "inserted", "updated", "deleted", "skipped", "not_sent")
    table.add_column("type")
    for name in columns:
        table.add_column(name.replace("_", " "), justify="right")
    for kind, counts in summary.counts.items():
        table.add_row(kind, *(f"{counts[name]:,}" for name in columns))
    out.print(table)
    out.print(
        f"{summary.pieces} pieces, {summary.sent} sent in this run, {summary.seconds:.1f} s; "
        + (
            f"{summary.skipped:,} skipped records in {summary.errors_file}"
            if summary.skipped
            else "nothing skipped"
        ),
        soft_wrap=True,
    )


def _export(client: Client, args, _progress) -> int:
    fmt = args.format or ("csv" if args.output.endswith(".csv") else "ndjson")
    with Progress(
        TextColumn("[bold]export {task.fields[type]}"),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=err,
        disable=args.quiet,
    ) as bar:
        task = bar.add_task("export", total=None, type=args.type)
        summary = client.export(
            args.type,
            args.output,
            format=fmt,
            force=args.force,
            on_rows=lambda n: bar.advance(task, n),
        )
    resumed = (
        f", resumed after id {summary.resumed_from}" if summary.resumed_from is not None else ""
    )
    out.print(
        f"{summary.rows:,} {args.type} in {summary.path} ({summary.seconds:.1f} s{resumed})",
        soft_wrap=True,
    )
    return 0


def _jobs(client: Client, args, _progress) -> int:
    if args.watch:
        with Progress(
            TextColumn("[bold]job {task.fields[state]}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=args.quiet,
        ) as bar:
            task = bar.add_task("job", total=None, state="")

            def update(job: dict) -> None:
                bar.update(
                    task, total=job["total"] or 1, completed=job["processed"], state=job["state"]
                )

            job = client.watch(args.watch, on_update=update)
        out.print_json(data=job)
        return 0 if job["state"] == "succeeded" else 2
    table = Table(title="ingest jobs")
    for name in ("id", "state", "processed", "total", "created_at", "finished_at"):
        # Whole ids, on any terminal width: they are what jobs --watch takes.
        table.add_column(name, no_wrap=name == "id", min_width=36 if name == "id" else None)
    for job in client.jobs(state=args.state):
        table.add_row(
            *(
                str(job.get(name) or "")
                for name in ("id", "state", "processed", "total", "created_at", "finished_at")
            )
        )
    out.print(table)
    return 0


def _at_least(smallest: int):
    def number(text: str) -> int:
        value = int(text)
        if value < smallest:
            raise argparse.ArgumentTypeError(f"must be at least {smallest}")
        return value

    return number


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


if __name__ == "__main__":
    sys.exit(main())
