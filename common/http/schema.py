"""OpenAPI generation: drf-spectacular's, told that reads need no token (see common.http.auth)."""

from django.conf import settings
from drf_spectacular import openapi
from rest_framework import permissions

from common.http.auth import WritesNeedToken


class AutoSchema(openapi.AutoSchema):
    def get_auth(self):
        auths = super().get_auth()
        open_read = (
            self.method in permissions.SAFE_METHODS
            and not settings.API_READS_REQUIRE_TOKEN
            and any(isinstance(p, WritesNeedToken) for p in self.view.get_permissions())
        )
        if open_read and {} not in auths:
            auths.append({})  # the token is optional: reads are open
        return auths
