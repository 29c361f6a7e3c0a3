"""checkpoint_table: every checkpoint's metrics as one row of results/study/checkpoints.csv,
and every run's untrained control as one row of results/study/untrained.csv."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads, torch_too=False)

from clexp.comparisons import checkpoint_table, untrained_table  # noqa: E402
from clexp.files import read_json, write_csv  # noqa: E402

write_csv(checkpoint_table([read_json(path) for path in snakemake.input.metrics]),
          snakemake.output.checkpoints)
write_csv(untrained_table([read_json(path) for path in snakemake.input.untrained]),
          snakemake.output.untrained)
