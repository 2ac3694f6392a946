"""Form bodies (urlencoded and multipart) under the same limit as JSON ones.

DRF's form parsers read what they are given: ``FormParser`` the whole body in one read, and
``MultiPartParser`` streams uploaded files to temporary files on disk, which Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE`` does not count (it counts only the other fields). None of this
service's resources has a file field, so a form body is held to ``API_MAX_BODY_BYTES`` like a
JSON one: a larger one is a 413 before a byte of it is read. Every body has a length by then
(``common.http.body`` reads a chunked one first, under the same limit).
"""

from rest_framework import parsers

from common.http.json import refuse_declared_oversize


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        refuse_declared_oversize(parser_context)
        return super().parse(stream, media_type, parser_context)


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        refuse_declared_oversize(parser_context)
        return super().parse(stream, media_type, parser_context)
