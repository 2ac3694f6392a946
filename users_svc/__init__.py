"""The users service: people who place orders. Lives on its own database (alias ``users``)."""
