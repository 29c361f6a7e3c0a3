"""summarize: one row per experiment and seed, and mean / sd over seeds per experiment."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads, torch_too=False)

from clexp.files import read_json, write_csv  # noqa: E402
from clexp.summary import summary_by_experiment, summary_table  # noqa: E402

summary = summary_table([read_json(path) for path in snakemake.input.metrics])
write_csv(summary, snakemake.output.summary)
write_csv(summary_by_experiment(summary), snakemake.output.by_experiment)
