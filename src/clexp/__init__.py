"""clexp: catastrophic forgetting of a small MLP on Split-MNIST.

The package is importable without Snakemake and without loading torch: the heavy modules
(`clexp.model`, `clexp.training`, `clexp.evaluation`) import torch themselves, while the
configuration, metrics, summary and report modules need only numpy and pandas.
"""

__version__ = "0.1.0"
