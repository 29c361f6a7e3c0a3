"""evaluate_checkpoint: accuracies, sparsity and probes of one checkpoint -> metrics.json."""

from clexp.joblog import log_stderr_to

log_stderr_to(snakemake.log[0])

from clexp.threads import limit_threads  # noqa: E402

limit_threads(snakemake.threads)

from clexp.evaluation import evaluate_checkpoint  # noqa: E402
from clexp.files import write_json  # noqa: E402

metrics = evaluate_checkpoint(
    snakemake.params.run,
    seed=int(snakemake.wildcards.seed),
    task=int(snakemake.wildcards.task),
    checkpoint_path=snakemake.input.checkpoint,
    data_path=snakemake.input.data,
    probe_settings=snakemake.params.probe,
    device=snakemake.params.device,
)
write_json(metrics, snakemake.output.metrics)
