"""report: gather every table and figure into one self-contained results/report.html."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads, torch_too=False)

from clexp.files import write_text  # noqa: E402
from clexp.report import StudyFiles, build_report  # noqa: E402

files = StudyFiles(
    experiments=snakemake.params.experiments,
    seeds=snakemake.params.seeds,
    analysis_seeds=snakemake.params.analysis_seeds,
    tasks=snakemake.params.tasks,
    paths=snakemake.params.paths,
    comparisons=snakemake.params.comparisons,
    comparison_figures=snakemake.params.comparison_figures,
    settings=snakemake.params.settings,
)
write_text(build_report(files, threads=snakemake.threads), snakemake.output[0])
