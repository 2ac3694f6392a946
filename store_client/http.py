"""Talking to the service: one ``httpx`` client, and which failures are worth a retry.

A bulk load meets three kinds of failure, and each wants its own answer:

* **Wait and try again**: the server said so (``429 Too Many Requests``, ``503`` with
  ``Retry-After``; a ``409`` for an ``Idempotency-Key`` whose first request still runs), or the
  network did (a refused connection while the server restarts, a reset, a timeout). The request
  is sent again, unchanged, after a capped exponential backoff with jitter (tenacity's
  ``wait_exponential_jitter``), or after ``Retry-After`` when the server gave one, until
  ``max_wait`` seconds have passed. Sending a piece twice is safe only because it carries the
  same ``Idempotency-Key`` (``store_client.push``): the server writes it once and replays its
  first answer.
* **Stop and say why**: any other 4xx is the client's fault (a bad token, a body the server
  refuses): retrying would fail the same way, so it raises :class:`ServerRefused` with the
  server's own message.
* Anything else (a 500) is not expected either: it stops the same way, naming the status.
"""

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

#: Statuses that mean "not now": sent again after a wait.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Seconds between polls of a key still held by a request that is running (its Retry-After is
#: the whole lock timeout, minutes, while the request usually ends in seconds).
KEY_HELD_POLL = 2.0
#: The longest single wait, whatever Retry-After says.
LONGEST_WAIT = 60.0


class ClientError(Exception):
    """Something the client cannot go on with; the message says what and what to do."""


class ServerRefused(ClientError):
    """The server answered with an error that a retry would not change (most 4xx)."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.body = _body_of(response)
        detail = self.body.get("detail") if isinstance(self.body, dict) else None
        # Not JSON (a proxy's page, the wrong address): its status says enough.
        shown = detail or self.body or response.reason_phrase
        super().__init__(
            f"{response.request.method} {response.request.url.path} was refused with "
            f"{response.status_code}: {shown}"
        )


class _Retry(Exception):
    """A response that asks for another try; ``wait`` is what the server asked for, if it did."""

    def __init__(self, response: httpx.Response, wait: float | None) -> None:
        super().__init__(f"{response.status_code} from {response.request.url.path}")
        self.response = response
        self.wait = wait


def _body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def _retryable(exc: BaseException) -> bool:
    # A transport error is a connection refused, reset or timed out, or a response cut off:
    # the request may or may not have reached the server, which is why pieces carry keys.
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return False  # a URL without http://, a request httpx cannot make: no retry helps
    return isinstance(exc, _Retry | httpx.TransportError)


class Transport:
    """``send()`` with the retry rules above, over one kept-alive ``httpx.Client``."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        max_wait: float = 1800.0,
        timeout: float = 300.0,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        headers = {"User-Agent": "store-client/1"}
        if token:
            headers["Authorization"] = f"Token {token}"
        if not url.startswith(("http://", "https://")):
            raise ClientError(f"{url!r} is not an http:// or https:// address.")
        self.base = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
        )
        self.max_wait = max_wait
        self.on_retry = on_retry or (lambda message: None)

    def close(self) -> None:
        self.http.close()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The first answer that is neither a retryable status nor a transport error; raises
        :class:`ServerRefused` for a 4xx (or 5xx) a retry would not change, and
        :class:`ClientError` once ``max_wait`` seconds of retries are spent."""
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            wait=self._wait,
            stop=stop_after_delay(self.max_wait),
            before_sleep=self._report,
            reraise=True,
        )
        try:
            return retrying(self._once, method, path, **kwargs)
        except _Retry as exc:
            raise ClientError(
                f"{method} {path}: still {exc.response.status_code} after retrying for "
                f"{self.max_wait:g} s: {_body_of(exc.response) or exc.response.text[:300]}"
            ) from None
        except httpx.UnsupportedProtocol as exc:
            raise ClientError(f"{method} {path}: {exc}") from None
        except httpx.TransportError as exc:
            raise ClientError(
                f"{method} {path}: no answer from {self.base} after retrying for "
                f"{self.max_wait:g} s ({type(exc).__name__}: {exc})"
            ) from None

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """Like :meth:`send`, but the body is left to read as a stream (the retries cover
        getting the response's status, not reading its body); closed on leaving."""
        response = self.send(method, path, stream=True, **kwargs)
        try:
            yield response
        finally:
            response.close()

    def _once(self, method: str, path: str, *, stream: bool = False, **kwargs: Any):
        request = self.http.build_request(method, path, **kwargs)
        response = self.http.send(request, stream=stream)
        if stream and response.status_code >= 400:
            response.read()  # the error's message, then the connection is free again
            response.close()
        if response.is_closed:
            _unbind(response)
        status = response.status_code
        if status in RETRY_STATUSES:
            raise _Retry(response, _retry_after(response))
        if status == 409 and _key_in_progress(response):
            raise _Retry(response, KEY_HELD_POLL)
        if status >= 400:
            raise ServerRefused(response)
        return response

    @staticmethod
    def _wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry) and exc.wait is not None:
            # What the server asked for, and a little jitter so that many clients told the
            # same second do not all come back at once.
            return min(exc.wait, LONGEST_WAIT) + random.uniform(0, 0.25)
        return wait_exponential_jitter(initial=0.5, max=30.0, jitter=1.0)(state)

    def _report(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        method, path = state.args[:2]
        self.on_retry(
            f"{method} {path}: {exc}; retrying in {wait:.1f} s (attempt {state.attempt_number + 1})"
        )


def _unbind(response: httpx.Response) -> None:
    """Let a read response, and the request body it holds, go as soon as nobody uses it.

    An httpx response and its stream refer to each other (the stream keeps the response to
    time it), so a response lives until the cyclic garbage collector's next full pass, and
    with it its request and the request's body: a piece of up to 8 MiB. While the next pieces
    are being cut, that pass came only after a dozen pieces: 46 MB of bodies at the client's
    peak (memray, 1,000,000 records). A response that has been read needs its stream no more.
    """
    response.stream = httpx.ByteStream(b"")


def _key_in_progress(response: httpx.Response) -> bool:
    """A 409 for an Idempotency-Key whose first request still runs (not another conflict)."""
    return "Retry-After" in response.headers and "Idempotency" in response.text
