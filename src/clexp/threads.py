"""Keep a job to the number of threads its rule declares.

Several jobs share the machine's cores; a job that lets OpenMP or BLAS start one thread per
core oversubscribes them and everything slows down many times.
"""

import logging
import os

_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def limit_threads(threads: int, torch_too: bool = True) -> None:
    """Limit OpenMP, BLAS and (optionally) torch to `threads` threads in this process."""
    threads = max(1, int(threads))
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    if torch_too:
        import torch

        torch.set_num_threads(threads)
        if torch.get_num_interop_threads() != threads:
            try:
                torch.set_num_interop_threads(threads)
            except RuntimeError:
                # Only settable before the first parallel work; the intra-op limit is what counts.
                pass
        logging.getLogger("clexp").info("torch threads: %d", torch.get_num_threads())
