"""Settings for the test suite: real database files in a scratch folder, fast password hashing.

The SQLite test databases are files (not Django's default in-memory databases) because the
ingest tests run worker threads and several connections at once, as production does, and an
in-memory shared-cache database locks differently from a WAL file.
"""

from pathlib import Path

from config.env import env_str
from config.settings.base import *  # noqa: F403
from config.settings.base import BASE_DIR, DATABASES

DEBUG = False
SECRET_KEY = "django-insecure-test-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

TEST_DATA_DIR = Path(env_str("TEST_DATA_DIR") or BASE_DIR / ".test-data").resolve()
TEST_DATA_DIR.mkdir(parents=True, exist_ok=True)

for _alias, _config in DATABASES.items():
    if _config["ENGINE"].endswith(".sqlite3"):
        _config["TEST"] = {"NAME": str(TEST_DATA_DIR / f"test_{_alias}.db")}

# Serve static files straight from the apps, as `runserver` does, without a collectstatic step.
WHITENOISE_USE_FINDERS = True

# Tests that are about limits set them (in the test process, or for a live server through
# its environment); the others must not trip over them.
API_THROTTLE_RATES = {
    "writes": env_str("API_WRITE_RATE", ""),
    "ingest": env_str("API_INGEST_RATE", ""),
    "anon_reads": env_str("API_ANON_READ_RATE", ""),
    "auth_failures": env_str("API_AUTH_FAILURE_RATE", ""),
}
AXES_ENABLED = False
