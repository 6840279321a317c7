"""What runs only on a developer's machine: the local API server (``recs serve``), the try-it page it
serves, and synthetic bundles for tests and benchmarks. Neither the Lambda asset nor the indexer image
contains this package."""
