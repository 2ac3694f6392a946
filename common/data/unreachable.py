"""Whether a database error means its server could not be reached, so that trying it again at
once is pointless.

A PostgreSQL server that answers says why it refused in an SQLSTATE (a lock it could not get, a
statement it cancelled): the next statement may well work. One that could not be reached, or
stopped answering mid-way (refused, timed out after ``DB_CONNECT_TIMEOUT``, the connection lost
after ``DB_NETWORK_TIMEOUT``), gives psycopg nothing to report but the connection's failure: no
SQLSTATE. A batch that meets such an error for a database does not try it again for each of its
chunks (``ingest.streaming``, ``orders_svc.services.reference_errors``): each try would wait out
the timeouts again. A SQLite error is never one: a file answers at once, or is found missing at
once, and a locked file is worth another try.
"""

import psycopg


def unreachable(exc: BaseException) -> bool:
    """``exc`` (a Django database error) is a PostgreSQL server that could not be reached."""
    cause = exc.__cause__
    return isinstance(cause, psycopg.Error) and cause.sqlstate is None
