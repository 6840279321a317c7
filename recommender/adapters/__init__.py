"""Adapters of the ports in ``recommender.ports``: embedded defaults and server clients.

Server adapters import their client libraries (opensearch-py, redis-py) only when built.
"""
