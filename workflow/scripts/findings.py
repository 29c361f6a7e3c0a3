"""findings: the study's claims evaluated on this run (results/study/findings.csv)."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads, torch_too=False)

import pandas as pd  # noqa: E402

from clexp.files import write_csv  # noqa: E402
from clexp.findings import findings_table  # noqa: E402

write_csv(findings_table(pd.read_csv(snakemake.input.checkpoints),
                         pd.read_csv(snakemake.input.summary),
                         pd.read_csv(snakemake.input.untrained)), snakemake.output[0])
