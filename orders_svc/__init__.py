"""The orders service: who ordered what, how many. Its own database (``orders``).

An order stores a user id and a product id, not foreign keys: the users and products live in
other services' databases, so the orders service checks them through those services' public
selectors, and guards their deletion while orders still point at them.
"""
