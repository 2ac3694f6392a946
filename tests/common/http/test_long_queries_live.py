"""A list filtered by a thousand ids, and its next link, through gunicorn as production runs it.

gunicorn refuses a request line above ``limit_request_line`` with its own HTML 414; the shipped
config (``config/gunicorn.conf.py``) raises it to 8,190 bytes, so that ``?id__in=`` of 1,000
six-digit ids fits, and the pagination writes links without re-encoding the query (its commas).
"""

import subprocess
import sys

import pytest

from tests import live
from users_svc.models import User

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)


def test_a_thousand_ids_and_the_next_link_pass_the_shipped_gunicorn():
    User.objects.bulk_create(
        User(id=i, name=f"U{i}", email=f"u{i}@example.com") for i in range(100_000, 101_000)
    )
    port = live.free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"],
        cwd=live.ROOT,
        env=live.process_env(
            GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1", GUNICORN_THREADS="2"
        ),
        start_new_session=True,
    )
    try:
        live.wait_until(lambda: live.listening(port), "gunicorn", server)
        ids = ",".join(str(i) for i in range(100_000, 101_000))
        url = f"http://127.0.0.1:{port}/users/?id__in={ids}&page_size=600"
        status, _, first = live.request("GET", url)
        assert status == 200, first
        assert first["count"] == 1000
        status, _, second = live.request("GET", first["next"])
        assert status == 200, second
        assert [user["id"] for user in second["results"]] == list(range(100_600, 101_000))
    finally:
        live.stop(server)
