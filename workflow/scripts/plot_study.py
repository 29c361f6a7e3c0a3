"""plot_study: the tables and figures that compare experiments (sweeps, comparisons)."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads, torch_too=False)

import pandas as pd  # noqa: E402

from clexp import figures, study  # noqa: E402
from clexp.files import read_json, write_csv  # noqa: E402

out = snakemake.output
settings = snakemake.params.settings
summary = pd.read_csv(snakemake.input.summary)
metrics = [read_json(path) for path in snakemake.input.metrics]
curves = pd.concat([pd.read_csv(path) for path in snakemake.input.run_curves],
                   ignore_index=True)

l1 = study.l1_sweep(summary, settings)
write_csv(l1, out.l1_sweep_table)
figures.plot_sweep(l1, "l1_activation", "L1 activation penalty (joint training)",
                   out.l1_sweep_figure, log_x=True)
decay = study.weight_decay_sweep(summary, settings)
write_csv(decay, out.weight_decay_sweep_table)
figures.plot_sweep(decay, "weight_decay", "Weight decay (sequential training)",
                   out.weight_decay_sweep_figure, log_x=True)
comparison = study.eval_loss_comparison(curves, settings)
write_csv(comparison, out.eval_loss_comparison_table)
figures.plot_eval_loss_comparison(comparison, out.eval_loss_comparison_figure)
write_csv(study.forward_transfer_table(metrics), out.forward_transfer_table)
write_csv(study.representation_table(metrics), out.representation_table)
write_csv(study.scenario_table(summary, settings), out.scenarios_table)
