"""The indexer: zero-downtime catalog refreshes into OpenSearch (or the embedded store).

Full rebuilds into a new versioned index with an atomic alias swap, incremental upserts and
deletes from catalog deltas, rollback, one run at a time; ``recs index ...`` locally and
``python -m indexer`` in the Fargate task. Nothing is imported here: clients are built on demand.
"""
