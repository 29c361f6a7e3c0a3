"""Measurements of a checkpoint beyond accuracy, on numpy arrays (no torch).

`checkpoint_analysis` returns the arrays of `analysis.npz` (made only for the seeds of the
config's `analysis.seeds`) and `checkpoint_scalars` the cheap scalars that every checkpoint's
`metrics.json` has. Schema of `analysis.npz` (per checkpoint):

- `hist_<layer>_weight_counts`, `hist_<layer>_weight_edges`, `hist_<layer>_bias_counts`,
  `hist_<layer>_bias_edges` for layer in fc1, fc2, fc3 (40 bins; the bias is the effective
  bias, see `effective_biases`), `hist_<layer>_bias_source` (`linear_bias` or
  `batchnorm_shift`);
- `hidden_features` (n x the width of h2, 84 in the study's network: h2 of a fixed batch of
  evaluation images, sorted by label), `hidden_features_labels`, `hidden_features_seen`
  (whether the image's class was trained by this checkpoint): the same images after every
  task of the run, a class-balanced sample of all the run's classes drawn with the run's seed
  (`clexp.data.fixed_sample`);
- `profile` (seen classes x 10: mean softmax output per true class), `profile_classes`;
- `example_images` (n x 28 x 28 uint8), `example_labels`, `example_predictions`,
  `example_top5_classes`, `example_top5_probs`: the strip of example images, old and new
  classes in turn;
- `tsne_h2` (m x 2), `tsne_labels` (m), and `tsne_h1` when asked.
"""

from __future__ import annotations

import numpy as np

from clexp.data import fixed_sample
from clexp.scenario import scored_logits_np, targets_np

LAYERS = ("fc1", "fc2", "fc3")
HISTOGRAM_BINS = 40


def summary_statistics(values: np.ndarray) -> dict[str, float]:
    """Mean, median and standard deviation."""
    return {"mean": float(np.mean(values)), "median": float(np.median(values)),
            "std": float(np.std(values))}


def effective_biases(parameters: dict[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
    """Per layer, the bias its units act with: (source, values).

    With BatchNorm after a hidden linear layer, that layer's own bias is subtracted again
    with the batch mean, so it gets no gradient and changes nothing; the unit's offset is
    BatchNorm's shift beta (`norm<k>.bias`), source `batchnorm_shift`. The unit's
    pre-activation is gamma * z + beta with z its standardised input, so a negative beta (for
    positive gamma) keeps the unit off for more than half of the inputs, as a negative bias
    does in a plain layer. Without BatchNorm (no normalisation, LayerNorm, which normalises
    across units so each unit's linear bias still acts, and the output layer) it is the linear
    layer's bias, source `linear_bias`.
    """
    biases = {}
    for index, layer in enumerate(LAYERS, start=1):
        if f"norm{index}.running_mean" in parameters:  # only BatchNorm keeps running stats
            biases[layer] = ("batchnorm_shift", parameters[f"norm{index}.bias"])
        else:
            biases[layer] = ("linear_bias", parameters[f"{layer}.bias"])
    return biases


def layer_statistics(parameters: dict[str, np.ndarray]) -> tuple[dict, dict, dict]:
    """Weight and effective-bias statistics per layer, and their histograms.

    `parameters` maps the model's state-dict keys (`fc1.weight`, `fc1.bias`, `norm1.bias`,
    ...) to arrays. Returns (weight_stats, bias_stats, arrays for analysis.npz); the biases
    are those of `effective_biases`, and `hist_<layer>_bias_source` names which.
    """
    weight_stats, bias_stats, histograms = {}, {}, {}
    biases = effective_biases(parameters)
    for layer in LAYERS:
        source, bias = biases[layer]
        for kind, stats, values in (("weight", weight_stats, parameters[f"{layer}.weight"]),
                                    ("bias", bias_stats, bias)):
            values = np.asarray(values).ravel()
            stats[layer] = summary_statistics(values)
            counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
            histograms[f"hist_{layer}_{kind}_counts"] = counts
            histograms[f"hist_{layer}_{kind}_edges"] = edges
        histograms[f"hist_{layer}_bias_source"] = np.asarray(source)
    return weight_stats, bias_stats, histograms


def saliency_norms(features: np.ndarray, labels: np.ndarray, classes) -> dict[str, float]:
    """Per class, ||(mean_c - mean_all) / std_all||: how far the class sits from the crowd.

    Units that never vary (std 0, e.g. dead units) carry no information and are left out.
    No classes (the untrained network has seen none): an empty dict.
    """
    if len(features) == 0:
        return {}
    mean_all, std_all = features.mean(axis=0), features.std(axis=0)
    alive = std_all > 0
    return {
        str(c): float(np.linalg.norm(
            (features[labels == c].mean(axis=0)[alive] - mean_all[alive]) / std_all[alive]
        ))
        for c in classes
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def probability_profile(probabilities: np.ndarray, labels: np.ndarray, classes) -> np.ndarray:
    """Mean softmax output per true class: rows = `classes`, columns = the ten outputs."""
    return np.stack([probabilities[labels == c].mean(axis=0) for c in classes])


def example_indices(labels: np.ndarray, tasks_seen, count: int) -> np.ndarray:
    """Up to `count` evaluation images, alternating between the oldest and the newest task's
    classes (then the others), so the strip shows what was forgotten and what was learned."""
    order = [tasks_seen[0], tasks_seen[-1]] + list(tasks_seen[1:-1])
    classes = [c for task in order for c in task]
    classes = list(dict.fromkeys(classes))
    pools = {c: list(np.flatnonzero(labels == c)) for c in classes}
    chosen: list[int] = []
    while len(chosen) < count and any(pools.values()):
        for c in classes:
            if pools[c] and len(chosen) < count:
                chosen.append(pools[c].pop(0))
    return np.asarray(chosen, dtype=np.int64)


def tsne_embedding(features: np.ndarray, seed: int = 0, iterations: int = 500) -> np.ndarray:
    """2-D t-SNE (scikit-learn, Barnes-Hut, PCA initialisation, fixed seed).

    The perplexity is a third of the points (between 2 and 30), and below the number of points
    as scikit-learn requires (tiny data subsets); a single point is placed at the origin.
    """
    from sklearn.manifold import TSNE

    if len(features) < 2:
        return np.zeros((len(features), 2), dtype=np.float32)
    perplexity = min(30.0, max(2.0, (len(features) - 1) / 3), len(features) - 1.0)
    return TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity,
                learning_rate="auto", max_iter=iterations).fit_transform(
                    features.astype(np.float32))


def checkpoint_analysis(
    parameters: dict[str, np.ndarray],
    eval_images: np.ndarray,
    eval_labels: np.ndarray,
    outputs: dict[str, np.ndarray],
    tasks_seen,
    settings: dict,
    tsne_h1: bool = False,
    seed: int = 0,
    run_classes=None,
    run: dict | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of analysis.npz of one checkpoint (its metrics.json scalars come from
    `checkpoint_scalars`, computed for every seed by the evaluation).

    `outputs` holds `logits`, `h1`, `h2` of every evaluation image; `settings` is the
    config's `analysis` section. The hidden-features batch is drawn from `run_classes` (all
    classes of the run; default: the seen ones) with the run's `seed`, so every checkpoint
    of the run shows the same images.
    """
    seen = [c for task in tasks_seen for c in task]
    _, _, arrays = layer_statistics(parameters)
    mask = np.isin(eval_labels, seen)
    seen_index = np.flatnonzero(mask)
    labels = eval_labels[seen_index]

    classes = sorted(seen if run_classes is None else {int(c) for c in run_classes})
    fixed = fixed_sample(eval_labels, classes, settings["hidden_features_images"], seed)
    fixed = fixed[np.argsort(eval_labels[fixed], kind="stable")]
    arrays["hidden_features"] = outputs["h2"][fixed]
    arrays["hidden_features_labels"] = eval_labels[fixed]
    arrays["hidden_features_seen"] = np.isin(eval_labels[fixed], seen)

    rng = np.random.default_rng(0)
    # Discarded: this draw once chose the hidden-features batch, and the t-SNE sample below
    # is the generator's second draw; kept so the latent maps sample the same images.
    rng.permutation(seen_index)

    # The softmax over the outputs each image is scored on in the run's scenario (task-IL:
    # its own task's; class- and domain-IL: all); the examples' targets are the scenario's.
    logits = outputs["logits"] if run is None else scored_logits_np(run, outputs["logits"],
                                                                     eval_labels)
    probabilities = softmax(logits)
    arrays["profile"] = probability_profile(probabilities[seen_index], labels, seen)
    arrays["profile_classes"] = np.asarray(seen)

    examples = example_indices(eval_labels, tasks_seen, settings["example_images"])
    top5 = np.argsort(-probabilities[examples], axis=1)[:, :5]
    arrays["example_images"] = eval_images[examples].reshape(-1, 28, 28)
    arrays["example_labels"] = eval_labels[examples]
    arrays["example_predictions"] = probabilities[examples].argmax(axis=1)
    arrays["example_targets"] = (eval_labels[examples] if run is None
                                 else targets_np(run, eval_labels[examples]))
    arrays["example_top5_classes"] = top5
    arrays["example_top5_probs"] = np.take_along_axis(probabilities[examples], top5, axis=1)

    sample = np.sort(rng.permutation(seen_index)[: settings["tsne_images"]])
    arrays["tsne_labels"] = eval_labels[sample]
    iterations = settings.get("tsne_iterations", 500)
    arrays["tsne_h2"] = tsne_embedding(outputs["h2"][sample], iterations=iterations)
    if tsne_h1:
        arrays["tsne_h1"] = tsne_embedding(outputs["h1"][sample], iterations=iterations)

    return arrays


def checkpoint_scalars(parameters: dict[str, np.ndarray], eval_labels: np.ndarray,
                       outputs: dict[str, np.ndarray], tasks_seen) -> dict:
    """The cheap measurements of a checkpoint that go into metrics.json for every seed:
    weight and bias statistics per layer and the saliency norm per seen class (on h2)."""
    seen = [c for task in tasks_seen for c in task]
    seen_index = np.flatnonzero(np.isin(eval_labels, seen))
    weight_stats, bias_stats, histograms = layer_statistics(parameters)
    return {
        "weight_stats": weight_stats,
        "bias_stats": bias_stats,
        "bias_source": {layer: str(histograms[f"hist_{layer}_bias_source"])
                        for layer in LAYERS},
        "saliency_norm": saliency_norms(outputs["h2"][seen_index], eval_labels[seen_index],
                                        seen),
    }
