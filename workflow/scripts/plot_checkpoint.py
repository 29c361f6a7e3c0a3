"""plot_checkpoint: the seven figures of one checkpoint, each its own PNG (one job: start-up
would otherwise dominate)."""

from clexp.joblog import start_job

start_job(snakemake.log[0], snakemake.threads, torch_too=False)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from clexp import figures  # noqa: E402

w = snakemake.wildcards
where = f"{w.experiment}, seed {w.seed}, after task {w.task}"
out = snakemake.output
with np.load(snakemake.input.analysis) as archive:
    arrays = dict(archive)
with np.load(snakemake.input.gradient_maps) as archive:
    gradients = dict(archive)

figures.plot_forgetting_curve(
    pd.read_csv(snakemake.input.forgetting_curve),
    f"Forgetting curve while training task {w.task} ({w.experiment}, seed {w.seed})",
    out.forgetting_curve,
)
figures.plot_relative_updates(
    pd.read_csv(snakemake.input.relative_updates),
    f"Relative weight updates, task {w.task} ({w.experiment}, seed {w.seed})",
    out.relative_updates,
)
figures.plot_gradient_maps(gradients, f"Accumulated gradients: {where}", out.gradient_maps)
figures.plot_probability_profile(arrays, f"Probability profile: {where}",
                                 out.probability_profile)
figures.plot_latent_map(arrays, f"Latent map: {where}", out.latent_map)
figures.plot_hidden_features(arrays, f"Hidden features h2: {where}", out.hidden_features)
figures.plot_weight_histograms(arrays, f"Weights and biases: {where}", out.weight_histograms)
