"""WSGI entry point (gunicorn, runserver). Production sets DJANGO_SETTINGS_MODULE itself.

A production server refuses to start without its collected static files (see
``common.ops.checks``): better a deploy that fails at once, saying to run collectstatic, than a
server whose admin and API docs answer 500.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

application = get_wsgi_application()

from common.ops.checks import refuse_to_start_without_static_files  # noqa: E402 (needs setup)

refuse_to_start_without_static_files()
