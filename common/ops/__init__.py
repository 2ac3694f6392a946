"""Operations: what an operator watches and uses.

Health probes, Prometheus metrics, JSON request logs with request ids, and the admin helpers
that write through the services.
"""
