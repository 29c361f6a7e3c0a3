"""evaluate_untrained: the untrained network of a run (task 0), measured like a checkpoint."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads)

from clexp.evaluation import evaluate_untrained  # noqa: E402
from clexp.files import write_json  # noqa: E402

metrics = evaluate_untrained(
    snakemake.params.run,
    seed=int(snakemake.wildcards.seed),
    data_path=snakemake.input.data,
    probe_settings=snakemake.params.probe,
    device=snakemake.params.device,
)
write_json(metrics, snakemake.output.metrics)
