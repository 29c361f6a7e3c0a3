"""plot_run_tasks: the figures over the tasks of one run (a run of more than one task)."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads, torch_too=False)

import pandas as pd  # noqa: E402

from clexp import figures  # noqa: E402
from clexp.files import read_json  # noqa: E402

experiment, seed = snakemake.wildcards.experiment, snakemake.wildcards.seed
run = f"{experiment}, seed {seed}"
out = snakemake.output
matrix = pd.read_csv(snakemake.input.accuracy_matrix)
if len(matrix) < 2:
    raise ValueError(f"{run} has one task: its per-task figures would show a single point; "
                     "its numbers are in the report's table of one-task runs instead.")
figures.plot_accuracy_matrix(matrix, f"Accuracy matrix: {run}", out.accuracy_matrix)

probes = pd.read_csv(snakemake.input.probe_table)
progress = probes.set_index("class").T.reset_index(drop=True)
progress.insert(0, "task", range(1, len(progress) + 1))
figures.plot_lines_per_task(progress, [c for c in progress.columns if c != "task"],
                            "linear-probe accuracy", f"Probe accuracy per class: {run}",
                            out.probe_progress)

curves = pd.read_csv(snakemake.input.run_curves)
figures.plot_lines_per_task(curves, ["population_sparsity", "sparsity_h1", "sparsity_h2"],
                            "fraction of exact zeros", f"Population sparsity: {run}",
                            out.sparsity)
figures.plot_lines_per_task(curves, ["val_loss"], "evaluation loss (seen classes)",
                            f"Evaluation loss: {run}", out.eval_loss)
bias_columns = [c for c in curves.columns if "_bias_" in c and c.startswith(("fc1", "fc2"))]
source = (read_json(snakemake.input.metrics[0]).get("bias_source") or {}).get("fc1",
                                                                             "linear_bias")
figures.plot_lines_per_task(curves, bias_columns, f"hidden-layer {figures.bias_label(source)}",
                            f"Bias statistics: {run}", out.bias_stats)
