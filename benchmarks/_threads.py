"""One math-library thread per benchmark process.

Timings of samplers that run linear algebra (GP fits) depend on how many threads BLAS and torch
use, and two processes with several threads each on a two-core machine slow each other down.
The variables take effect only if they are set before numpy or torch is imported, so
``python -m benchmarks`` sets them first, and worker processes inherit them from the parent.
"""

from __future__ import annotations

import os
import sys


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def set_thread_variables() -> None:
    """Set the BLAS and OpenMP thread-count variables to 1 unless the user has set them."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def limit_torch_threads() -> None:
    """Import torch, if it is installed, and let it use one intra-op and one inter-op thread."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        # torch allows this call only before its first parallel work; later calls raise.
        pass


def torch_is_loaded() -> bool:
    return "torch" in sys.modules
