"""Production settings: DEBUG off, secrets and hosts from the environment, HTTPS hardening.

The process refuses to start without SECRET_KEY and ALLOWED_HOSTS, so that a missing variable
is found at deploy time and not by an attacker. `python manage.py check --deploy` is clean with
these settings (the test suite checks it).
"""

from pathlib import Path

from config.env import env_bool, env_int, env_list, env_required, env_str
from config.settings.base import *  # noqa: F403
from config.settings.base import BASE_DIR, REST_FRAMEWORK

DEBUG = False
SECRET_KEY = env_required(
    "SECRET_KEY", "production needs its own secret key (at least 50 random characters)."
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS:
    env_required("ALLOWED_HOSTS", "production needs the host names it serves, comma-separated.")

# The browsable API is a developer's tool; production answers JSON only.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_RENDERER_CLASSES": ["common.http.json.ORJSONRenderer"],
}

# HTTPS: on by default; a deployment behind a TLS-terminating proxy sets the proxy header.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# Health checks and metric scrapes come from inside the network, often over plain HTTP: a
# redirect would read as "down".
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Static files (the docs' Swagger UI and Redoc, the admin) are served by the app itself
# (WhiteNoise), from the folder `manage.py collectstatic` fills. Without it the server refuses
# to start and `check --deploy` reports an error (common.ops.checks).
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles").resolve()
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
