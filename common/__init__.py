"""Pieces every service shares: JSON I/O, field cleaners, errors, pagination, database helpers.

Nothing here knows about users, products or orders; the services build on it.
"""
