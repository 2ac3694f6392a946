"""Database backends of our own (Django's, with a rule added); see ``sqlite3``."""
