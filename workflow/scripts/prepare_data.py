"""prepare_data: read the dataset once (torchvision) and write the compact array file."""

from clexp.jobserver import delegate

delegate(snakemake.log[0])  # run in the warm job server when there is one

from clexp.joblog import log_stderr_to  # noqa: E402

log_stderr_to(snakemake.log[0])

from clexp.data import prepare_dataset, save_dataset  # noqa: E402
from clexp.threads import limit_threads  # noqa: E402

limit_threads(snakemake.threads)
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
