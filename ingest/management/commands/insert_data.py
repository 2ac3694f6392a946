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
and 10 skipped. Run again, nothing is inserted (every valid record is already there, reported
as "Already present") and the output says so. ``--file PATH`` ingests a JSON batch file (the
body of ``POST /ingest/``) the same way.
"""

from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from common.data.validation import UNSET
from common.ops.observability import quiet_batch_logs
from ingest import pipeline
from ingest.records import BatchError, decode_batch
from orders_svc.selectors import order_list
from products_svc.selectors import product_list
from users_svc.selectors import user_list

SEED_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "seed.json"

# The report's order of sections, and how to read each table back.
TABLES = [
    (
        "orders",
        lambda ids: (
            order_list().filter(id__in=ids).values_list("id", "user_id", "product_id", "quantity")
        ),
    ),
    ("users", lambda ids: user_list().filter(id__in=ids).values_list("id", "name", "email")),
    ("products", lambda ids: product_list().filter(id__in=ids).values_list("id", "name", "price")),
]
FIELDS = {
    "users": ("id", "name", "email"),
    "products": ("id", "name", "price"),
    "orders": ("id", "user_id", "product_id", "quantity"),
}


def seed_number(value: Any) -> str:
    """A price as the report prints it: ``1000.0``, ``19.99`` (from an exact Decimal)."""
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text if "." in text else f"{text}.0"
    return repr(value)


def as_tuple(values: tuple) -> str:
    return "(" + ", ".join(seed_number(v) for v in values) + ")"


def raw_tuple(record: Any, fields: tuple[str, ...]) -> str:
    """A skipped record as it was sent (missing fields as None)."""
    if not hasattr(record, "__struct_fields__"):
        return repr(record)
    values = tuple(getattr(record, name) for name in fields)
    return "(" + ", ".join("None" if v is UNSET else repr(v) for v in values) + ")"


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

        write = self.stdout.write
        write("=== INSERTED DATA ===")
        write("")
        for name, read_back in TABLES:
            write(f"{name.upper()} TABLE (Inserted):")
            ids = sections[name].inserted_ids
            rows = sorted(read_back(ids[:show])) if ids else []
            for row in rows:
                write(as_tuple(row))
            if not ids:
                write("(none)")
            elif len(ids) > show:
                write(f"... and {len(ids) - show} more")
            write("")
        for name, _ in TABLES:
            write(f"{name.upper()} TABLE (Skipped):")
            skipped = sorted(sections[name].skipped, key=lambda skip: skip[0])
            for index, _, reasons in skipped[:show]:
                label = "Already present" if _is_duplicate(reasons) else "Failed validation"
                write(
                    f"{raw_tuple(sent[name][index], FIELDS[name])} --> {label}: "
                    f"{reasons_text(reasons)}"
                )
            if not skipped:
                write("(none)")
            elif len(skipped) > show:
                write(f"... and {len(skipped) - show} more")
            write("")

        inserted = {name: len(section.inserted_ids) for name, section in sections.items()}
        not_written = sum(section.failed_writes for section in sections.values())
        if dry_run:
            write("Dry run: nothing was written.")
        elif not_written:
            write(
                f"{not_written} valid records were not written because a database failed "
                "(see the reasons above); run the command again once it is back."
            )
        elif not any(inserted.values()):
            write("Nothing new was inserted: every valid record is already in the databases.")
        skipped = {name: len(section.skipped) for name, section in sections.items()}
        write(f"Final result: {_counts(inserted)} inserted; {_counts(skipped)} skipped.")


def _counts(per_table: dict[str, int]) -> str:
    return ", ".join(
        f"{per_table[name]} {name if per_table[name] != 1 else name.removesuffix('s')}"
        for name in ("users", "products", "orders")
    )


def _is_duplicate(reasons: dict[str, list[str]]) -> bool:
    return list(reasons) == ["id"] and reasons["id"][0].startswith("Duplicate id: a ")
