"""plot_run: the tables and the learning curves of one run (experiment, seed)."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads, torch_too=False)

import pandas as pd  # noqa: E402

from clexp import figures  # noqa: E402
from clexp.files import read_json, write_csv  # noqa: E402
from clexp.summary import accuracy_table, probe_table, run_curves  # noqa: E402

experiment, seed = snakemake.wildcards.experiment, snakemake.wildcards.seed
run = f"{experiment}, seed {seed}"
out = snakemake.output
metrics = [read_json(path) for path in snakemake.input.metrics]

write_csv(accuracy_table(metrics), out.accuracy_matrix)
# task-incremental: logits masked to each task's own classes
write_csv(accuracy_table(metrics, "per_task_acc_til"), out.accuracy_matrix_til)
log = pd.concat([pd.read_csv(path) for path in snakemake.input.train_logs], ignore_index=True)
write_csv(
    figures.plot_learning_curves(log, f"Learning curves: {run}", out.learning_curves_figure),
    out.learning_curves,
)
write_csv(probe_table(metrics), out.probe_table)
write_csv(run_curves(metrics), out.run_curves)
