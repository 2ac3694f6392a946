"""How many exports a process streams at once, and how long one may wait for its client.

An export holds a server thread, and a database connection between chunks, for as long as its
client reads (``common.http.export``): a few seconds for a client on the same network, hours for
one that stops reading without closing its connection. gunicorn writes each chunk with a
blocking ``sendall``, and a socket whose client reads nothing blocks it once the kernel's
buffers are full, without a timeout of its own. With the shipped 2 processes × 4 threads, eight
such clients would hold every thread: lists, writes and ``/healthz`` would wait behind them.

Two bounds keep that from happening:

* **A cap per process** (``EXPORT_MAX_STREAMS``, default 2 of gunicorn's 4 threads): an export
  takes a slot before it reads anything and gives it back when the server closes its response
  (WSGI's ``close()``, which every server calls, whether the export completed, failed or its
  client went away). An export over the cap is a 503 ``exports_busy`` with ``Retry-After``,
  answered at once: the other threads stay free for everything else. The cap is per process
  (a slot is a counter in memory), like gunicorn's threads themselves.
* **A send deadline** (``EXPORT_SEND_TIMEOUT_SECONDS``, default 30): under gunicorn, which puts
  the client's socket in the WSGI environ (``gunicorn.socket``), the socket gets that timeout
  for the rest of the response (gunicorn makes it blocking again for the connection's next
  request). A chunk the client has not taken within it makes ``sendall`` raise; gunicorn closes
  the connection and the iterator, and the export ends as ``stalled``: its slot, thread and
  connection are free. ``sendall``'s timeout bounds the whole call (Python 3.5+), so a client that
  trickles a few bytes at a time cannot stretch it.

``runserver`` gives no socket: there only the cap applies.
"""

import threading

from django.conf import settings

from common.exceptions import ExportsBusy

#: Seconds a client over the cap is told to wait (``Retry-After``).
RETRY_AFTER = 5

_lock = threading.Lock()
_streaming = 0


def streaming_exports() -> int:
    """Exports this process streams now (for tests and the log)."""
    return _streaming


class ExportSlot:
    """One of the process's ``EXPORT_MAX_STREAMS`` export slots, held until :meth:`release`
    (idempotent: the response's ``close()`` and an error before it may both call it)."""

    def __init__(self, resource: str) -> None:
        global _streaming
        with _lock:
            if _streaming >= settings.EXPORT_MAX_STREAMS:
                raise ExportsBusy(
                    f"This server process is already streaming {_streaming} exports, as many "
                    f"as it may at once (EXPORT_MAX_STREAMS); the export of {resource} was not "
                    f"started. Retry in {RETRY_AFTER} seconds, or page through "
                    f"GET /{resource}/?cursor= meanwhile.",
                    wait=RETRY_AFTER,
                )
            _streaming += 1
        self._held = True

    def release(self) -> None:
        global _streaming
        with _lock:
            if self._held:
                self._held = False
                _streaming -= 1


def bound_send_time(request) -> float | None:
    """Give the client's socket the send deadline, where the server exposes it (gunicorn);
    returns the deadline set, or None (``runserver``, the test client)."""
    sock = request.META.get("gunicorn.socket")
    if sock is None:
        return None
    sock.settimeout(settings.EXPORT_SEND_TIMEOUT)
    return settings.EXPORT_SEND_TIMEOUT
