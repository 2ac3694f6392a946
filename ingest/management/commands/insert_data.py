"""``python manage.py insert_data``: load the seed report's sample data, and print the report.

The data (10 users, 10 products, 10 orders, some invalid on purpose) is the fixture
``ingest/fixtures/seed.json``; it goes through the same pipeline as ``POST /ingest/``, so the
same rules, threads and duplicate checks apply. The output is the report's::

    === INSERTED DATA ===

    ORDERS TABLE (Inserted):
    (1, 1, 1, 2)
    ...
    ORDERS TABLE (Skipped):
    (8, 8, 8, 0) --> Failed validation: quantity: Ensure this value is greater than 0.

Result on empty databases: 9 users, 9 products, 7 orders; user 10, product 10 and orders 8, 9
and 10 skipped. Run again, nothing is inserted. A record skipped because its id is taken is
compared with the stored row: "Already present" when they are the same (once cleaned by the
rules: ``" Bob "`` is ``'Bob'``, a price of ``700`` is ``700.0``), "Present with other values:
stored (...)" when they differ (insert_data never changes a stored row).

The "Inserted" rows are read back from the databases, as stored. A ``--dry-run`` writes
nothing, so it has nothing to read back: it lists the records that would be inserted
("Would be inserted"), cleaned by the rules, with ``None`` for an id the database would assign.
``--file PATH`` ingests a JSON batch file (the body of ``POST /ingest/``) the same way.
"""

from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from common.data.validation import UNSET
from common.ops.observability import quiet_batch_logs
from ingest import pipeline
from ingest.checking import parse_id
from ingest.records import BatchError, decode_batch
from ingest.resources import ORDERS, PRODUCTS, USERS, Resource
from ingest.results import ResourceResult, duplicate_reason, no_id_left_reason
from orders_svc.selectors import order_list
from products_svc.selectors import product_list
from users_svc.selectors import user_list

SEED_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "seed.json"
#: Stored rows read back per query (a batch file may hold many taken ids).
READ_CHUNK = 10_000

# The report's order of sections, and how to read each table's rows back (one query per table).
TABLES = [
    (
        ORDERS,
        lambda ids: (
            order_list().filter(id__in=ids).values_list("id", "user_id", "product_id", "quantity")
        ),
    ),
    (USERS, lambda ids: user_list().filter(id__in=ids).values_list("id", "name", "email")),
    (PRODUCTS, lambda ids: product_list().filter(id__in=ids).values_list("id", "name", "price")),
]


def seed_number(value: Any) -> str:
    """A price as the report prints it: ``1000.0``, ``19.99`` (from an exact Decimal)."""
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text if "." in text else f"{text}.0"
    return repr(value)


def as_tuple(values: tuple) -> str:
    return "(" + ", ".join(seed_number(v) for v in values) + ")"


def raw_tuple(record: Any, resource: Resource) -> str:
    """A skipped record as it was sent (missing fields as None)."""
    if not hasattr(record, "__struct_fields__"):
        return repr(record)
    values = tuple(getattr(record, name) for name in ("id", *resource.fields))
    return "(" + ", ".join("None" if v is UNSET else repr(v) for v in values) + ")"


def cleaned_row(record: Any, resource: Resource) -> tuple:
    """A record that passed its rules as it would be stored: ``(id or None, *values)``."""
    values, _ = resource.rule(*(getattr(record, name) for name in resource.fields))
    return (parse_id(record.id)[0], *values)


def reasons_text(reasons: dict[str, list[str]]) -> str:
    return " ".join(f"{field}: {' '.join(messages)}" for field, messages in reasons.items())


class Command(BaseCommand):
    help = "Insert the seed report's sample data (or a JSON batch file) and print the report."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--file", type=Path, help="A JSON batch file, as POST /ingest/ takes.")
        parser.add_argument(
            "--show", type=int, default=50, help="Rows to print per section (default 50)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Check only; write nothing.")

    def handle(self, *args, file: Path | None, show: int, dry_run: bool, **options) -> None:
        quiet_batch_logs(options["verbosity"])
        path = file or SEED_FILE
        try:
            batch = decode_batch(path.read_bytes())
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}") from None
        except BatchError as exc:
            raise CommandError(f"{path} is not an ingest batch: {exc}") from None
        sent = {"users": batch.users, "products": batch.products, "orders": batch.orders}
        result = pipeline.ingest(batch, dry_run=dry_run)
        sections = {"users": result.users, "products": result.products, "orders": result.orders}

        self.stdout.write("=== INSERTED DATA ===")
        self.stdout.write("")
        for resource, read_back in TABLES:
            section = sections[resource.name]
            if dry_run:  # nothing to read back: the records as the rules cleaned them
                valid = _valid(section)
                rows = [cleaned_row(sent[resource.name][i], resource) for i in valid[:show]]
                self._rows(f"{resource.name.upper()} TABLE (Would be inserted):", rows, len(valid))
            else:
                ids = section.inserted_ids
                rows = sorted(read_back(ids[:show])) if ids else []
                self._rows(f"{resource.name.upper()} TABLE (Inserted):", rows, len(ids))
        differ = 0
        for resource, read_back in TABLES:
            lines, other_values = _skipped_lines(resource, sections[resource.name], sent, read_back)
            differ += other_values
            self._lines(f"{resource.name.upper()} TABLE (Skipped):", lines[:show], len(lines))
        self._summary(sections, dry_run, differ)

    def _rows(self, title: str, rows: list[tuple], total: int) -> None:
        self._lines(title, [as_tuple(row) for row in rows], total)

    def _lines(self, title: str, lines: list[str], total: int) -> None:
        """A section: its title, the lines shown, and how many more there are."""
        self.stdout.write(title)
        for line in lines:
            self.stdout.write(line)
        if not total:
            self.stdout.write("(none)")
        elif total > len(lines):
            self.stdout.write(f"... and {total - len(lines)} more")
        self.stdout.write("")

    def _summary(self, sections: dict[str, ResourceResult], dry_run: bool, differ: int) -> None:
        write = self.stdout.write
        if dry_run:
            counted = {name: len(_valid(section)) for name, section in sections.items()}
        else:
            counted = {name: len(section.inserted_ids) for name, section in sections.items()}
        not_written = sum(section.failed_writes for section in sections.values())
        if dry_run:
            write("Dry run: nothing was written.")
        elif not_written:
            write(
                f"{not_written} valid records were not written because a database failed "
                "(see the reasons above); run the command again once it is back."
            )
        elif not any(counted.values()) and differ:
            write(
                "Nothing new was inserted: every valid record's id is already taken "
                f"({differ} of them by rows with other values, which insert_data leaves as "
                "they are)."
            )
        elif not any(counted.values()):
            write("Nothing new was inserted: every valid record is already in the databases.")
        skipped = {name: len(section.skipped) for name, section in sections.items()}
        verb = "would be inserted" if dry_run else "inserted"
        write(f"Final result: {_counts(counted)} {verb}; {_counts(skipped)} skipped.")


def _skipped_lines(
    resource: Resource, section: ResourceResult, sent: dict[str, list], read_back
) -> tuple[list[str], int]:
    """One line per skipped record, in request order: what was sent, and why it was skipped;
    and how many of them have an id that is stored with other values. A record skipped because
    its id is taken is compared with the stored row (one query per READ_CHUNK of them)."""
    skipped = sorted(section.skipped, key=lambda skip: skip[0])
    taken = [skip[1] for skip in skipped if skip[2] == duplicate_reason(resource, skip[1])]
    stored = {}
    for start in range(0, len(taken), READ_CHUNK):
        stored.update((row[0], row) for row in read_back(taken[start : start + READ_CHUNK]))
    lines, differ = [], 0
    no_id_left = no_id_left_reason(resource)
    for index, record_id, reasons in skipped:
        record = sent[resource.name][index]
        if reasons == no_id_left:  # valid, but its table has used the largest id there is
            label = f"Not inserted: {reasons_text(reasons)}"
        elif reasons != duplicate_reason(resource, record_id):
            label = f"Failed validation: {reasons_text(reasons)}"
        elif record_id in stored and cleaned_row(record, resource) != stored[record_id]:
            label = f"Present with other values: stored {as_tuple(stored[record_id])}"
            differ += 1
        else:
            label = f"Already present: {reasons_text(reasons)}"
        lines.append(f"{raw_tuple(record, resource)} --> {label}")
    return lines, differ


def _valid(section: ResourceResult) -> list[int]:
    """Request indexes of the records that passed every check, in request order."""
    skipped = {index for index, _, _ in section.skipped}
    return [index for index in range(section.received) if index not in skipped]


def _counts(per_table: dict[str, int]) -> str:
    return ", ".join(
        f"{per_table[name]} {name if per_table[name] != 1 else name.removesuffix('s')}"
        for name in ("users", "products", "orders")
    )
