"""report: gather the tables and figures into one self-contained results/report.html."""

from clexp.joblog import log_stderr_to

log_stderr_to(snakemake.log[0])

from clexp.threads import limit_threads  # noqa: E402

limit_threads(snakemake.threads, torch_too=False)

import pandas as pd  # noqa: E402

from clexp.files import write_text  # noqa: E402
from clexp.report import build_report  # noqa: E402

experiments, seeds = snakemake.params.experiments, snakemake.params.seeds
matrices = iter(snakemake.input.accuracy_matrices)
curves = iter(snakemake.input.learning_curves)
# The input lists are ordered experiment-major, seed-minor (see all_runs in common.smk).
runs = {
    experiment: {
        seed: {"accuracy_matrix": next(matrices), "learning_curves": next(curves)}
        for seed in seeds
    }
    for experiment in experiments
}
page = build_report(
    pd.read_csv(snakemake.input.summary), pd.read_csv(snakemake.input.by_experiment), runs
)
write_text(page, snakemake.output[0])
