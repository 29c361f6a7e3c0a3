"""evaluate_checkpoint: accuracies, sparsity, probes and analysis arrays of one checkpoint."""

from clexp.jobserver import delegate

delegate(snakemake.log[0])  # run in the warm job server when there is one

from clexp.joblog import log_stderr_to  # noqa: E402

log_stderr_to(snakemake.log[0])

from clexp.threads import limit_threads  # noqa: E402

limit_threads(snakemake.threads)

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
