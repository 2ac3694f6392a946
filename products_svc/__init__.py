"""The products service: what can be ordered, at what price. Its own database (``products``)."""
