"""Data plumbing: how checked values reach the databases.

Field cleaners used by every service's rules, the fast bulk writes, set-based id lookups,
table locks and the cross-service deletion guards, and model fields with storage choices of
their own.
"""
