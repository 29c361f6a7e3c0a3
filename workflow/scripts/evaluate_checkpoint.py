"""evaluate_checkpoint: accuracies, sparsity, probes and analysis arrays of one checkpoint."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads)

from clexp.evaluation import evaluate_checkpoint  # noqa: E402
from clexp.files import write_json, write_npz  # noqa: E402

metrics, arrays = evaluate_checkpoint(
    snakemake.params.run,
    seed=int(snakemake.wildcards.seed),
    task=int(snakemake.wildcards.task),
    checkpoint_path=snakemake.input.checkpoint,
    data_path=snakemake.input.data,
    probe_settings=snakemake.params.probe,
    device=snakemake.params.device,
    analysis_settings=snakemake.params.analysis,
)
write_npz(arrays, snakemake.output.analysis)
write_json(metrics, snakemake.output.metrics)
