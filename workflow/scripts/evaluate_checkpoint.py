"""evaluate_checkpoint: accuracies, sparsity, probes and statistics of one checkpoint."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads)

from clexp.evaluation import evaluate_checkpoint  # noqa: E402
from clexp.files import write_json  # noqa: E402

metrics, _ = evaluate_checkpoint(
    snakemake.params.run,
    seed=int(snakemake.wildcards.seed),
    task=int(snakemake.wildcards.task),
    checkpoint_path=snakemake.input.checkpoint,
    data_path=snakemake.input.data,
    probe_settings=snakemake.params.probe,
    device=snakemake.params.device,
)
write_json(metrics, snakemake.output.metrics)
