"""/metrics stays bounded whatever clients send: label values come from a fixed set."""

import random
import string

import pytest

pytestmark = pytest.mark.django_db(databases="__all__")


def metric_lines(client) -> list[str]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode().splitlines()


def test_made_up_methods_do_not_grow_metrics(anonymous_api):
    anonymous_api.generic("QWERTYUIOPASD", "/users/")  # the folded series exists from here on
    before = metric_lines(anonymous_api)
    rng = random.Random(7)
    for _ in range(300):
        method = "".join(rng.choices(string.ascii_uppercase, k=13))
        assert anonymous_api.generic(method, "/users/").status_code in (401, 405)
    after = metric_lines(anonymous_api)
    # Counters of requests already labelled change value, not the number of lines; a few more
    # lines may come from this test's own GET /metrics.
    assert len(after) - len(before) < 40, set(after) - set(before)
    labelled = [line for line in after if 'method="' in line and "/users" not in line]
    assert not [line for line in labelled if "QWERTY" in line or "ZZ" in line]
    assert any('method="<invalid method>"' in line for line in after)
