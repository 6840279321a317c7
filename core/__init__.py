"""The shared kernel: what training, the indexer, the Lambda and the tools all rely on.

- ``bundle`` / ``manifest`` / ``s3_bundle``: the model bundle contract, opened from a path or ``s3://``
- ``features`` / ``towers``: movie features and the numpy user and item towers
- ``index_schema``: the OpenSearch index (name, settings, mapping, documents)
- ``embedded_store``: the local stand-in for OpenSearch (versioned indices behind an alias file)
- ``title_search``: the title-search rule every index implements
- ``locations``: the one rule for "S3 or a local path"
- ``settings``: the one mechanism that reads ``RECS_*`` variables into a frozen dataclass
- ``aws``: AWS connections (the OpenSearch client, the Redis auth token), built on demand
- ``errors``: the base class of every error the project raises

Importing any of it has no side effect: no client is built, no environment variable is set, and
nothing heavier than numpy is imported at module level (boto3, opensearch-py and redis-py are
imported inside the functions that need them).
"""
