"""Model fields with storage choices that Django's defaults do not make for us."""

from django.db import models


class MoneyField(models.DecimalField):
    """A decimal amount of money: ``Decimal`` in Python and in the API, never a float.

    On PostgreSQL the column is ``numeric(max_digits, decimal_places)``, exact. SQLite has no
    decimal type: Django's ``decimal`` column has NUMERIC affinity, which already stores 19.99 as
    an 8-byte float and 1000 as the integer 1000. We declare the column ``real`` instead, so that
    a whole price reads back in the sqlite3 shell as ``1000.0``, exactly as the seed report
    shows. Values round-trip exactly either way: Django reads them back quantized to
    ``decimal_places``, and a double holds 15 significant digits, more than ``max_digits``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        assert (self.max_digits or 99) <= 15, (
            "MoneyField(max_digits=...) must be at most 15: beyond that SQLite's 8-byte float "
            "no longer round-trips every value exactly."
        )

    def db_type(self, connection) -> str | None:
        if connection.vendor == "sqlite":
            return "real"
        return super().db_type(connection)
