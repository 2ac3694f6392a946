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
  request). A chunk (5,000 rows: 0.3 to 2.7 MB, depending on how wide they are) the client has
  not taken within it makes ``sendall`` raise; gunicorn closes the iterator, and the export ends
  as ``stalled``: its slot, thread and database connection are free. ``sendall``'s timeout bounds
  the whole call (Python 3.5+), so a client that trickles a few bytes at a time cannot stretch
  it: a client must read at least a chunk per deadline (17 to 90 KB/s at 30 s). The export then
  shuts the socket down both ways itself: gunicorn's own close of a connection whose client
  keeps it open waits up to 2 s on the worker's main thread, the one that accepts connections
  (an outside review measured /healthz frozen 2 s per stalled export without this).

``runserver`` gives no socket: there only the cap applies.
"""

import socket
import threading
from contextlib import suppress
from dataclasses import dataclass

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


@dataclass(frozen=True)
class SendDeadline:
    """The send deadline of one export's socket."""

    sock: socket.socket
    seconds: float

    def cut(self) -> None:
        """End the connection now, both ways (see the module docstring)."""
        with suppress(OSError):  # gone already
            self.sock.shutdown(socket.SHUT_RDWR)


def bound_send_time(request) -> SendDeadline | None:
    """Give the client's socket the send deadline, where the server exposes it (gunicorn);
    None where it does not (``runserver``, the test client)."""
    sock = request.META.get("gunicorn.socket")
    if sock is None:
        return None
    sock.settimeout(settings.EXPORT_SEND_TIMEOUT)
    return SendDeadline(sock, settings.EXPORT_SEND_TIMEOUT)
