"""train_task: resume from task t-1's checkpoint, train task t, write checkpoint and records."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads)

import os  # noqa: E402
import sys  # noqa: E402

import pandas as pd  # noqa: E402

from clexp import kept  # noqa: E402
from clexp.files import write_csv, write_npz  # noqa: E402
from clexp.training import CURVE_COLUMNS, LOG_COLUMNS, run_training_task  # noqa: E402

# In a cluster job: a resubmitted group job restores what this job finished before.
keep_pattern = os.environ.get(kept.KEEP_VARIABLE)
if keep_pattern:
    keep_folder = keep_pattern.format(**snakemake.wildcards)
    key = kept.job_key(dict(snakemake.params.items()), dict(snakemake.wildcards.items()),
                       [*snakemake.input, os.path.join(snakemake.scriptdir, "train_task.py")])
    resubmitted = os.environ.get(kept.RESTORE_VARIABLE)
    if resubmitted and kept.restore(snakemake.output, keep_folder, key):
        print(f"restored from {keep_folder} (trained by an earlier attempt of this job)",
              file=sys.stderr)
        sys.exit(0)

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
if keep_pattern:
    kept.keep(snakemake.output, keep_folder, key)
