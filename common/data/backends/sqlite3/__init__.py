"""Django's SQLite backend, opening existing files only (see ``base``)."""
