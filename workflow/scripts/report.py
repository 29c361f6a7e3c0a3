"""report: gather every table and figure into one self-contained results/report.html."""

from clexp.jobserver import delegate

delegate(snakemake.log[0])  # run in the warm job server when there is one

from clexp.joblog import log_stderr_to  # noqa: E402

log_stderr_to(snakemake.log[0])

from clexp.threads import limit_threads  # noqa: E402

limit_threads(snakemake.threads, torch_too=False)

from clexp.files import write_text  # noqa: E402
from clexp.report import StudyFiles, build_report  # noqa: E402

files = StudyFiles(
    experiments=snakemake.params.experiments,
    seeds=snakemake.params.seeds,
    tasks=snakemake.params.tasks,
    paths=snakemake.params.paths,
)
write_text(build_report(files), snakemake.output[0])
