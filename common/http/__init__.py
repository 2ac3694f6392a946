"""HTTP plumbing: how requests come in and answers go out.

Authentication and throttles, body reading, JSON parsing and rendering, the one exception
handler, pagination, streamed exports (NDJSON and CSV; how many at once, how long a client may
stall one), the OpenAPI schema class, and the base viewset and serializer that hand clean values
to the services.
"""
