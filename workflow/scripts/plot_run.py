"""plot_run: the tables and figures of one run (experiment, seed) across its tasks."""

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

matrix = accuracy_table(metrics)
write_csv(matrix, out.accuracy_matrix)
figures.plot_accuracy_matrix(matrix, f"Accuracy matrix: {run}", out.accuracy_matrix_figure)
# task-incremental: logits masked to each task's own classes
write_csv(accuracy_table(metrics, "per_task_acc_til"), out.accuracy_matrix_til)
log = pd.concat([pd.read_csv(path) for path in snakemake.input.train_logs], ignore_index=True)
write_csv(
    figures.plot_learning_curves(log, f"Learning curves: {run}", out.learning_curves_figure),
    out.learning_curves,
)

probes = probe_table(metrics)
write_csv(probes, out.probe_table)
progress = probes.set_index("class").T.reset_index(drop=True)
progress.insert(0, "task", range(1, len(progress) + 1))
figures.plot_lines_per_task(progress, [c for c in progress.columns if c != "task"],
                            "linear-probe accuracy", f"Probe accuracy per class: {run}",
                            out.probe_progress_figure)

curves = run_curves(metrics)
write_csv(curves, out.run_curves)
figures.plot_lines_per_task(curves, ["population_sparsity", "sparsity_h1", "sparsity_h2"],
                            "fraction of exact zeros", f"Population sparsity: {run}",
                            out.sparsity_figure)
figures.plot_lines_per_task(curves, ["val_loss"], "evaluation loss (seen classes)",
                            f"Evaluation loss: {run}", out.eval_loss_figure)
bias_columns = [c for c in curves.columns if "_bias_" in c and c.startswith(("fc1", "fc2"))]
source = (metrics[0].get("bias_source") or {}).get("fc1", "linear_bias")
figures.plot_lines_per_task(curves, bias_columns, f"hidden-layer {figures.bias_label(source)}",
                            f"Bias statistics: {run}", out.bias_stats_figure)
