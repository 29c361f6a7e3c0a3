"""tune_point: train one grid point on the training split minus the validation images and
measure it on those (clexp.tuning); write its validation.json."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads)

from clexp.files import write_json  # noqa: E402
from clexp.tuning import tune_point  # noqa: E402

result = tune_point(
    snakemake.params.point["settings"],
    snakemake.params.point["values"],
    seed=int(snakemake.wildcards.seed),
    data_path=snakemake.input.data,
    tuning=snakemake.params.tuning,
    device=snakemake.params.device,
)
write_json(result, snakemake.output.validation)
