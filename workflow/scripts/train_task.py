"""train_task: resume from task t-1's checkpoint, train task t, write checkpoint and log."""

from clexp.joblog import log_stderr_to

log_stderr_to(snakemake.log[0])

from clexp.threads import limit_threads  # noqa: E402

limit_threads(snakemake.threads)

import pandas as pd  # noqa: E402

from clexp.files import write_csv  # noqa: E402
from clexp.training import LOG_COLUMNS, run_training_task  # noqa: E402

log = run_training_task(
    snakemake.params.run,
    seed=int(snakemake.wildcards.seed),
    task=int(snakemake.wildcards.task),
    data_path=snakemake.input.data,
    checkpoint_path=snakemake.output.checkpoint,
    previous_checkpoint=snakemake.input.previous or None,
    device=snakemake.params.device,
)
write_csv(pd.DataFrame(log, columns=LOG_COLUMNS), snakemake.output.log_table)
