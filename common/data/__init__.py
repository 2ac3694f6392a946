"""Data plumbing: how checked values reach the databases.

Field cleaners used by every service's rules, the fast bulk writes, set-based id lookups,
table locks and the cross-service deletion guards, keyset reads of whole tables (exports), and
model fields with storage choices of their own.
"""
