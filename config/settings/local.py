"""Settings for a developer's machine: `make run` uses these."""

from config.env import env_bool, env_str
from config.settings.base import *  # noqa: F403

DEBUG = env_bool("DEBUG", True)
# Only for local use: production refuses to start without its own SECRET_KEY.
SECRET_KEY = env_str("SECRET_KEY") or "django-insecure-local-development-key-not-for-production"
