"""The recommendation API as it runs in AWS Lambda: the handler, the service, its ports and adapters.

This package holds only what the Lambda runs (the asset is ``core/`` plus this package). Importing it
has no side effect; the function's environment sets ``OPENBLAS_NUM_THREADS=1`` (``infra``), and the
local server (``recs.local``) sets it for its own process.
"""
