"""published_table: the run's ACC per method and scenario beside a paper's published numbers."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads, torch_too=False)

import pandas as pd  # noqa: E402

from clexp.files import write_csv  # noqa: E402
from clexp.published import published_comparison, read_published  # noqa: E402

table = published_comparison(pd.read_csv(snakemake.input.summary), snakemake.params.settings,
                             read_published(snakemake.input.published))
write_csv(table, snakemake.output[0])
