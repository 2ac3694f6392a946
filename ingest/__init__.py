"""Bulk ingest: a batch of users, products and orders in, a result for every record out.

The pipeline (``pipeline.py``) checks every record with the services' own rules, writes users
and products through their services in chunks on one writer thread per database, then checks
each order's user and product against the users and products databases and writes the orders.
``apis.py`` serves it as ``POST /ingest/``; ``insert_data`` runs the seed report's data through
it. This package owns no service data: it only calls the services' public functions.
"""
