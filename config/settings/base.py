"""Settings shared by every environment; ``local``, ``test`` and ``production`` build on them.

Anything that differs between machines comes from an environment variable (see ``config.env``
and the README's configuration table). With none set, the service runs on three SQLite files
in the project folder, one per service, plus one for Django's own tables.
"""

from datetime import timedelta
from pathlib import Path

from config.db_router import SERVICE_DATABASES
from config.env import (
    database_from_env,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    postgres_options,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# Where the SQLite files live when no database URL is given. A folder created here is private to
# the service's user (0700), as the files in it are (0600); an existing one is left as it is.
DATA_DIR = Path(env_str("DATA_DIR") or BASE_DIR).resolve()
if not DATA_DIR.exists():
    DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    DATA_DIR.chmod(0o700)  # mkdir's mode passes through the umask

SECRET_KEY = env_str("SECRET_KEY", "")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # Supplies the key format and hashing of common.models.ApiKey; its own APIKey table is
    # created but unused (and kept out of the admin by common.admin).
    "rest_framework_api_key",
    "axes",  # admin logins: a lockout per address after failed passwords
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "common",
    "users_svc",
    "products_svc",
    "orders_svc",
    "ingest",
]

MIDDLEWARE = [
    # Outermost, so that their timings and log lines cover everything below.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "common.ops.observability.RequestLogMiddleware",
    # Before anything that reads a body: a cut-off or badly framed body is a 400, never data.
    "common.http.body.BodyFramingMiddleware",
    # A database that is gone or damaged is a 503 naming it on every page, the admin's too.
    "common.http.exception_handler.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "common.ops.metrics.PrometheusAfterMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Databases: one per service -------------------------------------------------------------
# `default` holds Django's own tables (auth, sessions, admin); each service app is routed to its
# own alias by config.db_router. Each alias takes a URL from its own variable, e.g.
# USERS_DATABASE_URL=postgres://user@db-host:5432/users; without one it is a SQLite file.
SQLITE_BUSY_TIMEOUT = env_float("SQLITE_BUSY_TIMEOUT", 30.0, minimum=0)
SQLITE_CACHE_KIB = env_int("SQLITE_CACHE_KIB", 32 * 1024, minimum=100)
DB_CONN_MAX_AGE = env_int("DB_CONN_MAX_AGE", 60, minimum=0)
# A PostgreSQL server that stops answering (cut off, hung) fails the requests that need it
# within these, as a 503 naming it (config.env.postgres_options says which does what).
POSTGRES_OPTIONS = postgres_options(
    connect_timeout=env_int("DB_CONNECT_TIMEOUT", 5, minimum=1),
    network_timeout=env_int("DB_NETWORK_TIMEOUT", 10, minimum=1),
    statement_timeout=env_int("DB_STATEMENT_TIMEOUT", 120, minimum=1),
)

DATABASES = {
    alias: database_from_env(
        f"{alias.upper()}_DATABASE_URL",
        DATA_DIR / f"{alias}.db",
        busy_timeout_seconds=SQLITE_BUSY_TIMEOUT,
        conn_max_age=DB_CONN_MAX_AGE,
        cache_kib=SQLITE_CACHE_KIB,
        postgres=POSTGRES_OPTIONS,
    )
    for alias in ["default", *SERVICE_DATABASES.values()]
}
DATABASE_ROUTERS = ["config.db_router.ServiceRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

# --- Bulk ingest (POST /ingest/) --------------------------------------------------------------
INGEST_MAX_RECORDS = env_int("INGEST_MAX_RECORDS", 500_000, minimum=1)
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 64 * 1024 * 1024, minimum=1024)
# Records per chunk; each chunk is one transaction on its database.
INGEST_CHUNK_SIZE = env_int("INGEST_CHUNK_SIZE", 10_000, minimum=1)
# Write users and products on their own threads while the next records are checked. Off: every
# write runs in the request's thread (slower; the benchmark compares both).
INGEST_WRITER_THREADS = env_bool("INGEST_WRITER_THREADS", True)
# Writer threads per PostgreSQL database (SQLite always gets one: one writer per file). One is
# faster where the databases share the app's cores: with two, a 300,000-record ingest took
# 1.22-1.36 s in-process on two cores, with one 1.10-1.27 s (four runs each, alternating), the
# orders' single transaction being the longest and the others' COPYs taking its CPU. Raise it
# when each database has a server of its own with cores to spare.
INGEST_WRITERS_PER_DATABASE = env_int("INGEST_WRITERS_PER_DATABASE", 1, minimum=1)
# How long an Idempotency-Key is remembered, and how long a request holding one may run before
# another request with the same key may take over (the first is presumed dead).
INGEST_IDEMPOTENCY_TTL = env_int("INGEST_IDEMPOTENCY_TTL", 24 * 60 * 60, minimum=1)
INGEST_IDEMPOTENCY_LOCK_TIMEOUT = env_int("INGEST_IDEMPOTENCY_LOCK_TIMEOUT", 15 * 60, minimum=1)
# Background jobs (POST /ingest/?async=true): bigger batches than a request should hold open.
INGEST_ASYNC_MAX_RECORDS = env_int("INGEST_ASYNC_MAX_RECORDS", 5_000_000, minimum=1)
INGEST_ASYNC_MAX_BODY_BYTES = env_int(
    "INGEST_ASYNC_MAX_BODY_BYTES", 512 * 1024 * 1024, minimum=1024
)
# Threads running jobs inside the web process when no broker is configured.
INGEST_JOB_WORKERS = env_int("INGEST_JOB_WORKERS", 2, minimum=1)
# A running job's worker proves it is alive this often; after INGEST_JOB_STALE_AFTER seconds of
# silence the job is given to another worker, at most INGEST_JOB_MAX_ATTEMPTS times in all.
INGEST_JOB_HEARTBEAT_SECONDS = env_float("INGEST_JOB_HEARTBEAT_SECONDS", 10.0, minimum=0.1)
INGEST_JOB_STALE_AFTER = env_float("INGEST_JOB_STALE_AFTER", 120.0, minimum=1.0)
INGEST_JOB_MAX_ATTEMPTS = env_int("INGEST_JOB_MAX_ATTEMPTS", 3, minimum=1)
# What the reaper (GET /ingest/jobs/, a worker's start, `manage.py reap_ingest_jobs`) deletes.
# A job's payload goes as soon as the job ends; the job row (and its result) this many seconds
# after it ended. Expired Idempotency-Keys go after INGEST_IDEMPOTENCY_TTL (above).
INGEST_JOB_RETENTION = env_int("INGEST_JOB_RETENTION", 7 * 24 * 60 * 60, minimum=1)
# Write-ledger rows (common.models.WriteLedger) are dropped when their job or request ends; the
# ones a crashed run left are deleted after this long (never those of a job still unfinished).
# Keep it above INGEST_IDEMPOTENCY_LOCK_TIMEOUT: a retry with the same key reuses them.
INGEST_LEDGER_RETENTION = env_int("INGEST_LEDGER_RETENTION", 7 * 24 * 60 * 60, minimum=1)

# Celery runs ingest jobs on worker machines when a broker is configured
# (e.g. redis://redis:6379/0); without one, jobs run on threads of the web process.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or None
# The queue jobs go through: deployments sharing one broker keep apart by giving each its own.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE") or "celery"
CELERY_TASK_ACKS_LATE = True  # a job whose worker dies is delivered again...
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # ...and a busy worker does not hoard queued jobs
CELERY_TASK_IGNORE_RESULT = True  # results live in the job rows, not in a result backend
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis redelivers an unacknowledged job after this long: a little above the stale limit.
    "visibility_timeout": int(INGEST_JOB_STALE_AFTER * 3),
}

# The body limit of every endpoint but POST /ingest/ (which reads its body itself against
# INGEST_MAX_BODY_BYTES): a single record is a few hundred bytes, so 1 MiB is ample and keeps a
# padded body from costing a worker gigabytes. Django and the JSON parser both enforce it.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("API_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)

# --- Who may do what (common.http.auth) ----------------------------------------------------------
API_READS_REQUIRE_TOKEN = env_bool("API_READS_REQUIRE_TOKEN", False)
# Rates, e.g. "600/minute"; empty: no limit. Writes and batches count per client (its account,
# whichever of its keys it sends); anonymous reads and failed authentications per address.
API_THROTTLE_RATES = {
    "writes": env_str("API_WRITE_RATE", "600/minute"),
    "ingest": env_str("API_INGEST_RATE", "60/minute"),
    "anon_reads": env_str("API_ANON_READ_RATE", "600/minute"),
    # After this many 401s from an address, every request from it that carries a key is a 429,
    # a valid key too: otherwise a guess that is right would still be told apart from a wrong one.
    "auth_failures": env_str("API_AUTH_FAILURE_RATE", "20/minute"),
}
# How many reverse proxies in front of the app append to X-Forwarded-For. The address that
# throttles and the admin lockout count is the one the nearest of them saw; with 0 (no proxy)
# it is the connection's address and X-Forwarded-For is ignored, since a client can send any.
NUM_PROXIES = env_int("NUM_PROXIES", 0, minimum=0)

# Admin logins (django-axes): AXES_FAILURE_LIMIT wrong passwords from an address lock it out
# of the login form (a 429 with Retry-After, common.http.auth.login_locked_out) for the
# cool-off; a successful login resets the count. Attempts are kept in the default database
# (and listed in the admin), so that every process sees them.
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("ADMIN_LOGIN_COOLOFF_MINUTES", 15.0, minimum=0.1))
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # its start-up banner would follow every manage.py command
AXES_CLIENT_IP_CALLABLE = "common.http.auth.client_address"
AXES_LOCKOUT_CALLABLE = "common.http.auth.login_locked_out"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out address
    "django.contrib.auth.backends.ModelBackend",
]
# Throttle counts live in this cache: shared by every process with CACHE_URL (Redis), else
# counted per process.
_CACHE_URL = env_str("CACHE_URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _CACHE_URL}
        if _CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- REST API ------------------------------------------------------------------------------
API_PAGE_SIZE = env_int("API_PAGE_SIZE", 50, minimum=1)
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 1000, minimum=1)
# Rows a page number reaches (an OFFSET walks them all); deeper, lists answer by cursor.
API_MAX_PAGE_DEPTH = env_int("API_MAX_PAGE_DEPTH", 10_000, minimum=1)
# Rows per query of an export (GET /users/export/...): each chunk is read, encoded and sent
# before the next is read, so this bounds an export's memory (common.data.streams).
EXPORT_CHUNK_ROWS = 5_000
# Exports one process streams at once (each holds a thread for as long as its client reads):
# one more is a 503 "exports_busy" with Retry-After, so that slow exports never take every
# thread from lists, writes and /healthz. The default leaves half of gunicorn's 4 threads free.
EXPORT_MAX_STREAMS = env_int("EXPORT_MAX_STREAMS", 2, minimum=1)
# How long one chunk may wait for the client to take it (a few hundred KB: a client reading
# under ~10 KB/s, or not at all, is too slow); past it the export is cut off as "stalled" and its
# thread and database connection are free again. Applies under gunicorn, which gives the view
# its socket.
EXPORT_SEND_TIMEOUT = env_float("EXPORT_SEND_TIMEOUT_SECONDS", 30.0, minimum=0.1)

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": [
        "common.http.json.ORJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "common.http.json.ORJSONParser",
        "common.http.forms.FormParser",
        "common.http.forms.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "common.http.pagination.PageNumberPagination",
    "PAGE_SIZE": API_PAGE_SIZE,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "common.http.schema.AutoSchema",
    "EXCEPTION_HANDLER": "common.http.exception_handler.api_exception_handler",
    # Reads are open, writes need an API token (see common.http.auth); the admin session too.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "common.http.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["common.http.auth.WritesNeedToken"],
    "DEFAULT_THROTTLE_CLASSES": [
        "common.http.auth.AnonReadRateThrottle",
        "common.http.auth.WriteRateThrottle",
    ],
    "NUM_PROXIES": NUM_PROXIES,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "LIST_SERIALIZER_ERRORS_AS_DICT": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Distributed store API",
    "DESCRIPTION": (
        "Users, products and orders, each kept by its own service in its own database.\n\n"
        "Validation happens in Python before anything is written: a user needs a non-empty "
        "name and a valid email; a product a price greater than 0; an order a quantity greater "
        "than 0 and a user and a product that exist (checked against the users and products "
        "databases). Invalid input gets a 400 with a message per field; deleting a user or a "
        "product that orders still reference gets a 409.\n\n"
        "**Who may call what.** Reads are open: they carry no padlock. Writes need an API key, "
        "and carry one: an operator makes a key with `manage.py create_api_token NAME` (after "
        "`make run`: `.venv/bin/python manage.py create_api_token NAME`; printed once). Click "
        "**Authorize**, paste the key, and the padlocks close: *Try it out* then sends "
        "`Authorization: Bearer <key>` (`Token <key>` works too, as in the README's curl "
        "examples)."
    ),
    "VERSION": "1.0.0",
    # Clients authenticate with a key; the admin's session cookie, which the browsable API
    # accepts too, is not for them (it filled the Authorize dialog with a "sessionid" field).
    "AUTHENTICATION_WHITELIST": ["common.http.auth.ApiTokenAuthentication"],
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Everything the docs pages load is served by this app: they work with no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {
        "deepLinking": True,
        "displayRequestDuration": True,
        "tryItOutEnabled": False,
        # The default validator badge loads an image from a public server.
        "validatorUrl": None,
    },
    "ENUM_NAME_OVERRIDES": {},
}

# One JSON object per line (common.ops.observability.JsonFormatter), or LOG_FORMAT=plain for people.
LOG_FORMAT = env_str("LOG_FORMAT", "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "common.ops.observability.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if LOG_FORMAT == "plain" else "json",
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # One handler for everything: Django's own console handler would print each line twice.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "INFO"},
        # Every request already gets its line (store.request); Django's own 4xx warnings would
        # repeat it. Server errors still come with their traceback.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "ERROR"},  # runserver's own line per request, the same
    },
}
