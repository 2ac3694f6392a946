"""Pieces every service shares, grouped by kind: ``http`` (requests in, answers out), ``data``
(checked values into the databases) and ``ops`` (health, metrics, logs, admin); the errors the
services raise, in business terms, are in ``exceptions``.

Nothing here knows about users, products or orders; the services build on it.
"""
