"""System checks of our own: what ``manage.py check --deploy`` must catch before users do.

Production serves its static files (the admin's, Swagger UI's and Redoc's) through WhiteNoise's
manifest storage: every ``{% static %}`` in a page looks its file up in the manifest
``collectstatic`` writes, and a missing manifest (or a file missing from it) makes the page a
500. So ``/admin/``, ``/api/docs/`` and ``/api/redoc/`` fail on a server started without
``collectstatic``. The check below says so, naming the command to run; it is a deployment
check (``check --deploy``) so that ``collectstatic`` itself, which runs the static files
checks first, is never blocked by it, and ``config.wsgi`` runs it at start-up, so that a
production server refuses to start rather than serve those 500s.
"""

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

COLLECTSTATIC = "python manage.py collectstatic --noinput"
_PAGES = "/admin/, /api/docs/ and /api/redoc/ answer 500 until then"


@checks.register(checks.Tags.staticfiles, deploy=True)
def check_static_files_collected(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Error ``common.E001`` without the manifest, ``common.E002`` for files not collected."""
    return static_files_errors()


def static_files_errors() -> list[checks.Error]:
    """Nothing to report unless a manifest storage is configured (production)."""
    if not isinstance(staticfiles_storage, ManifestFilesMixin):
        return []
    storage = staticfiles_storage
    try:
        location = storage.manifest_storage.path(storage.manifest_name)
        present = storage.manifest_storage.exists(storage.manifest_name)
    except (ImproperlyConfigured, NotImplementedError) as exc:  # no STATIC_ROOT, say
        location, present = storage.manifest_name, False
        reason = str(exc)
    else:
        reason = f"STATIC_ROOT={settings.STATIC_ROOT}"
    if not present:
        return [
            checks.Error(
                f"The static files manifest {location} is missing ({reason}): {_PAGES}.",
                hint=f"Run `{COLLECTSTATIC}` with these settings before starting the server.",
                id="common.E001",
            )
        ]
    try:
        collected, _hash = storage.load_manifest()  # read now, not the copy loaded at start-up
    except ValueError as exc:
        collected, missing = {}, [str(exc)]
    else:
        missing = [path for path in _static_files() if path not in collected]
    if missing:
        return [
            checks.Error(
                f"{len(missing)} static file(s) not in the manifest {location} (e.g. "
                f"{missing[0]}): {_PAGES}.",
                hint=f"Run `{COLLECTSTATIC}` again: the manifest is older than the code.",
                id="common.E002",
            )
        ]
    return []


def refuse_to_start_without_static_files() -> None:
    """Raise ``ImproperlyConfigured`` with the check's message: for the WSGI entry point."""
    errors = static_files_errors()
    if errors:
        raise ImproperlyConfigured(
            "Refusing to serve: " + " ".join(f"{error.msg} {error.hint}" for error in errors)
        )


def _static_files() -> list[str]:
    """Every file collectstatic would collect, by its path under STATIC_URL."""
    paths: dict[str, None] = {}
    for finder in finders.get_finders():
        for path, _storage in finder.list(ignore_patterns=["CVS", ".*", "*~"]):
            paths.setdefault(path.replace("\\", "/"))
    return list(paths)
