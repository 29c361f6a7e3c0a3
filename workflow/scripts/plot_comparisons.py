"""plot_comparisons: each section's experiments against seq, one quantity per figure."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads, torch_too=False)

import pandas as pd  # noqa: E402

from clexp.comparisons import plot_section  # noqa: E402

table = pd.read_csv(snakemake.input.checkpoints)
untrained = pd.read_csv(snakemake.input.untrained)
for section, experiments in snakemake.params.groups.items():
    paths = {name: path for s, name, path in snakemake.params.figures if s == section}
    plot_section(table, experiments, section, paths, untrained)
