"""prepare_data: read the dataset once (torchvision) and write the compact array file."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads)

from clexp.data import prepare_dataset, save_dataset  # noqa: E402

subset = snakemake.params.subset
arrays = prepare_dataset(
    snakemake.params.dataset,
    snakemake.params.data_root,
    snakemake.params.download,
    train_per_class=subset["train_images_per_class"],
    eval_per_class=subset["eval_images_per_class"],
)
save_dataset(arrays, snakemake.output[0])
print(
    f"{snakemake.params.dataset}: {len(arrays['train_labels'])} training and "
    f"{len(arrays['eval_labels'])} evaluation images -> {snakemake.output[0]}",
    file=__import__("sys").stderr,
)
