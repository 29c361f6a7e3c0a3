"""plot_run: accuracy matrix table and learning curves of one run (experiment, seed)."""

from clexp.joblog import log_stderr_to

log_stderr_to(snakemake.log[0])

from clexp.threads import limit_threads  # noqa: E402

limit_threads(snakemake.threads, torch_too=False)

import pandas as pd  # noqa: E402

from clexp.figures import plot_learning_curves  # noqa: E402
from clexp.files import read_json, write_csv  # noqa: E402
from clexp.summary import accuracy_table  # noqa: E402

experiment, seed = snakemake.wildcards.experiment, snakemake.wildcards.seed
metrics = [read_json(path) for path in snakemake.input.metrics]
write_csv(accuracy_table(metrics), snakemake.output.accuracy_matrix)
log = pd.concat([pd.read_csv(path) for path in snakemake.input.train_logs], ignore_index=True)
series = plot_learning_curves(
    log, f"{experiment}, seed {seed}: learning curves", snakemake.output.learning_curves_figure
)
write_csv(series, snakemake.output.learning_curves)
