"""analyze_checkpoint: the analysis arrays of one checkpoint (t-SNE, profiles, examples)."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads)

from clexp.evaluation import analyze_checkpoint  # noqa: E402
from clexp.files import write_npz  # noqa: E402

arrays = analyze_checkpoint(
    snakemake.params.run,
    seed=int(snakemake.wildcards.seed),
    task=int(snakemake.wildcards.task),
    checkpoint_path=snakemake.input.checkpoint,
    data_path=snakemake.input.data,
    analysis_settings=snakemake.params.analysis,
    device=snakemake.params.device,
)
write_npz(arrays, snakemake.output.analysis)
