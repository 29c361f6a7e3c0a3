"""select_setting: the grid point with the best mean validation ACC (clexp.tuning), as the
selection table and the sweep figure."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads, torch_too=False)

from clexp.figures import plot_tuning_sweep  # noqa: E402
from clexp.files import read_json, write_csv  # noqa: E402
from clexp.tuning import selection_table  # noqa: E402

results: dict = {}
for path in snakemake.input.validations:
    record = read_json(path)
    results.setdefault(record["point"], {})[record["seed"]] = record["acc"]
table = selection_table(snakemake.params.grid, results)
write_csv(table, snakemake.output.selection)
plot_tuning_sweep(table, f"{snakemake.wildcards.experiment}: validation ACC per grid point",
                  snakemake.output.sweep)
