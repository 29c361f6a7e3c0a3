"""train_task: resume from task t-1's checkpoint, train task t, write checkpoint and records."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads)

import pandas as pd  # noqa: E402

from clexp.files import write_csv, write_npz  # noqa: E402
from clexp.training import CURVE_COLUMNS, LOG_COLUMNS, run_training_task  # noqa: E402

result = run_training_task(
    snakemake.params.run,
    seed=int(snakemake.wildcards.seed),
    task=int(snakemake.wildcards.task),
    data_path=snakemake.input.data,
    checkpoint_path=snakemake.output.checkpoint,
    previous_checkpoint=snakemake.input.previous or None,
    device=snakemake.params.device,
    curve_images_per_task=snakemake.params.curve_images_per_task,
    curve_stride=snakemake.params.curve_stride,
    instruments=snakemake.params.instruments,
)
write_csv(pd.DataFrame(result["log"], columns=LOG_COLUMNS), snakemake.output.log_table)
# Seeds outside analysis.seeds record no per-batch instruments: these three files are empty.
write_csv(pd.DataFrame(result["forgetting_curve"], columns=CURVE_COLUMNS),
          snakemake.output.forgetting_curve)
write_csv(pd.DataFrame(result["relative_updates"]), snakemake.output.relative_updates)
write_npz(result["gradient_sums"], snakemake.output.gradient_maps)
