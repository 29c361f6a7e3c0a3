"""prepare_data: read the dataset once (torchvision) and write the compact array file."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads)

import sys  # noqa: E402

from clexp.data import write_dataset_file  # noqa: E402

subset = snakemake.params.subset
message = write_dataset_file(
    snakemake.output[0],
    snakemake.params.dataset,
    # Where the files are found is read from the config, not from params: the dataset's
    # content does not depend on it, so moving data_root or switching download reruns nothing.
    snakemake.config["data_root"],
    snakemake.config["download"],
    train_per_class=subset["train_images_per_class"],
    eval_per_class=subset["eval_images_per_class"],
    keep_dir=snakemake.params.keep_dir,
)
print(f"{message} -> {snakemake.output[0]}", file=sys.stderr)
