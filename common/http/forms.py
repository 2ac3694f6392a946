"""Form bodies (urlencoded and multipart) under the same limit as JSON ones.

DRF's form parsers read what they are given: ``FormParser`` the whole body in one read, and
``MultiPartParser`` streams uploaded files to temporary files on disk, which Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE`` does not count (it counts only the other fields). None of this
service's resources has a file field, so a form body is held to ``API_MAX_BODY_BYTES`` like a
JSON one: a larger one is a 413 before a byte of it is read. Every body has a length by then
(``common.http.body`` reads a chunked one first, under the same limit).
"""

from django.conf import settings
from rest_framework import parsers

from common.http.json import body_too_large


def _refuse_oversized(parser_context) -> None:
    request = (parser_context or {}).get("request")
    meta = getattr(request, "META", {})
    try:
        declared = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        raise body_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        _refuse_oversized(parser_context)
        return super().parse(stream, media_type, parser_context)


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        _refuse_oversized(parser_context)
        return super().parse(stream, media_type, parser_context)
