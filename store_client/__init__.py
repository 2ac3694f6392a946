"""A client for files of any size: push them exactly once, export tables, follow jobs.

``POST /ingest/`` takes a batch of limited size (``GET /ingest/limits/``); a file of gigabytes
has to be cut into requests, and a bulk load that dies halfway must not, when run again, write
twice what it had already sent. This package does both:

* ``store_client.pieces`` cuts a file into requests under the server's limits, the same way on
  every run (users and products first, then orders);
* ``store_client.state`` keeps, next to the file, which pieces the server confirmed;
* ``store_client.push`` sends every piece not yet confirmed with an ``Idempotency-Key`` made
  from the file and the piece's position, so that a piece sent again is written once;
* ``store_client.http`` retries what is worth a retry (429 with ``Retry-After``, 503, a server
  restarting, a dropped connection) and stops with the server's message on the rest;
* ``store_client.export`` streams a table to a file and resumes it from its last id;
* ``store_client.jobs`` lists and watches background jobs;
* ``store_client.cli`` is ``python -m store_client push|export|jobs``.

As a library: ``Client(url, token).push(path)``, ``.export("users", path)``, ``.jobs()``.
"""

from store_client.client import Client
from store_client.http import ClientError, ServerRefused

__all__ = ["Client", "ClientError", "ServerRefused"]
