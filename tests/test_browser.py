"""The docs in a real browser: Debian's chromium, headless, with no network beyond loopback.

Swagger UI must render the endpoints from the app's own assets, and "Try it out" on
``GET /users/`` must come back with a 200 from the live server. ``.ci/run`` installs chromium
and chromedriver and sets ``REQUIRE_BROWSER=1``; elsewhere the test is skipped if they are
missing. ``SAVE_SCREENSHOTS=1`` refreshes ``docs/api-docs.png`` (shown in the README).
"""

import os
import shutil
from pathlib import Path

import pytest

from tests import live
from tests.conftest import make_api_key
from tests.factories import make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(databases="__all__", transaction=True),
]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# Where Swagger UI shows the answer of an executed request.
LIVE_RESPONSE = "#operations-users-users_list .live-responses-table tr.response"
DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail("REQUIRE_BROWSER is set but chromium/chromedriver are not installed")
        pytest.skip("chromium and chromedriver are not installed (apt install chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1500",
        # Any host but the loopback address fails to resolve: no network beyond loopback.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def test_swagger_ui_renders_and_try_it_out_gets_a_200(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    make_user(name="Alice", email="alice@example.com")
    wait = WebDriverWait(browser, 30)
    with live.gunicorn() as (base_url, _):
        browser.get(f"{base_url}/api/docs/")
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
        paths = {
            e.get_attribute("data-path")
            for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
        }
        assert {"/users/", "/products/", "/orders/", "/ingest/"} <= paths

        users_list = browser.find_element(By.ID, "operations-users-users_list")
        users_list.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
        wait.until(
            ready.element_to_be_clickable(
                (By.CSS_SELECTOR, "#operations-users-users_list .try-out__btn")
            )
        ).click()
        wait.until(
            ready.element_to_be_clickable(
                (By.CSS_SELECTOR, "#operations-users-users_list .execute")
            )
        ).click()
        status = wait.until(
            ready.presence_of_element_located(
                (
                    By.CSS_SELECTOR,
                    f"{LIVE_RESPONSE} .response-col_status",
                )
            )
        )
        assert status.text.strip() == "200"
        body = browser.find_element(
            By.CSS_SELECTOR, "#operations-users-users_list .live-responses-table .microlight"
        )
        assert "alice@example.com" in body.text

        loaded = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert loaded, "the page loaded no assets at all"
        assert all(url.startswith(base_url) for url in loaded), loaded

        browser.execute_script("arguments[0].scrollIntoView()", users_list)
        shot = tmp_path / "api-docs.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("SAVE_SCREENSHOTS"):
            DOCS.mkdir(exist_ok=True)
            shutil.copy(shot, DOCS / "api-docs.png")


def _padlock(browser, operation: str) -> str | None:
    """The aria-label of an operation's padlock ("authorization button locked" / "...
    unlocked"), or None when it has none."""
    from selenium.webdriver.common.by import By

    buttons = browser.find_elements(By.CSS_SELECTOR, f"#{operation} .authorization__btn")
    return buttons[0].get_attribute("aria-label") if buttons else None


def test_padlocks_mark_what_needs_a_key_and_close_once_it_is_given(browser):
    """Reads carry no padlock; writes carry one, open until a key is given in Authorize, then
    closed, and "Try it out" then creates the user (201). Before, an optional key on reads drew
    a closed padlock there and the writes an open one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    from users_svc.models import User

    key = make_api_key("docs-reader")
    wait = WebDriverWait(browser, 30)
    with live.gunicorn() as (base_url, _):
        browser.get(f"{base_url}/api/docs/")
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
        assert "create_api_token" in browser.find_element(By.CSS_SELECTOR, ".info").text
        assert _padlock(browser, "operations-users-users_list") is None
        assert _padlock(browser, "operations-users-users_retrieve") is None
        assert _padlock(browser, "operations-users-users_create") == "authorization button unlocked"
        assert _padlock(browser, "operations-ingest-ingest_create") == (
            "authorization button unlocked"
        )

        browser.find_element(By.CSS_SELECTOR, ".auth-wrapper .btn.authorize").click()
        field = wait.until(
            ready.element_to_be_clickable((By.CSS_SELECTOR, "input[aria-label=auth-bearer-value]"))
        )
        assert "create_api_token" in browser.find_element(By.CSS_SELECTOR, ".modal-ux").text
        field.send_keys(key)
        browser.find_element(By.CSS_SELECTOR, ".modal-ux .btn.authorize").click()
        browser.find_element(By.CSS_SELECTOR, ".modal-ux .btn-done").click()
        assert _padlock(browser, "operations-users-users_create") == "authorization button locked"
        assert _padlock(browser, "operations-users-users_list") is None

        create = "#operations-users-users_create"
        browser.find_element(By.CSS_SELECTOR, f"{create} .opblock-summary").click()
        wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, f"{create} .try-out__btn")))
        browser.find_element(By.CSS_SELECTOR, f"{create} .try-out__btn").click()
        wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, f"{create} .execute"))).click()
        answer = f"{create} .live-responses-table tr.response .response-col_status"
        status = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, answer)))
        assert status.text.strip() == "201"
    assert list(User.objects.values_list("name", "email")) == [("Alice", "alice@example.com")]
