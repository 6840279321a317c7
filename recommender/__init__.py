"""The serving package: numpy towers, the bundle contract, and the recommendation API.

Inside AWS Lambda, OpenBLAS (numpy's BLAS) is limited to one thread unless
``OPENBLAS_NUM_THREADS`` says otherwise: a function has one or two vCPUs and multiplies one
vector at a time, and starting OpenBLAS' thread pool when numpy is imported costs the cold start
10 to 100 ms (see ``bench.cold_start``). Set here because it must happen before numpy's import.
"""

import os as _os

if _os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    _os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
