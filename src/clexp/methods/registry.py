"""The methods by name, with their config keys and defaults (torch-free).

Adding a method: write its module (a `Method` subclass), add one line here naming the module,
the class and its options with their defaults, and add the options to the `options` block of
workflow/schemas/config.schema.yaml.

Options are prefixed with the method's name (`ewc_lambda`) except the replay buffer's, which ER
and A-GEM share. `buffer_size` and the other options appear in an experiment's resolved
settings only when its method uses them (OGD's only where they differ from the notebook's
behaviour, and `ogd_memory` only with `ogd_directions: gtl`: `clexp.config`).
"""

from __future__ import annotations

import importlib
from typing import NamedTuple


class MethodSpec(NamedTuple):
    module: str
    cls: str
    options: dict


METHODS: dict[str, MethodSpec] = {
    "naive": MethodSpec("clexp.methods.base", "Naive", {}),
    # ogd_memory: m, the images per task whose ground-truth-logit gradients OGD-GTL stores.
    # 200 is the value commonly quoted for Farajtabar et al. 2020; it could not be checked
    # against the paper's text (the OGD+ reproduction of Bennani et al. uses 100 on
    # Split-MNIST).
    "ogd": MethodSpec("clexp.methods.ogd", "OGD",
                      {"ogd_project": "gradient", "ogd_directions": "mean_loss",
                       "ogd_memory": 200}),
    "ewc": MethodSpec("clexp.methods.ewc", "EWC",
                      {"ewc_lambda": 100.0, "ewc_online": False, "ewc_gamma": 1.0,
                       "ewc_fisher_images": 1000}),
    "si": MethodSpec("clexp.methods.si", "SI", {"si_c": 1.0, "si_xi": 0.001}),
    "lwf": MethodSpec("clexp.methods.lwf", "LwF", {"lwf_alpha": 1.0, "lwf_temperature": 2.0,
                                                   "lwf_weighting": "study"}),
    "er": MethodSpec("clexp.methods.er", "ER", {"buffer_size": 500}),
    "agem": MethodSpec("clexp.methods.agem", "AGEM",
                       {"buffer_size": 500, "agem_sample_size": 256}),
}


def method_names() -> list[str]:
    """The registered method names."""
    return list(METHODS)


def all_options() -> dict:
    """Every method option with its default (a shared option once)."""
    options: dict = {}
    for spec in METHODS.values():
        options.update(spec.options)
    return options


def method_class(name: str):
    """The `Method` subclass registered as `name` (imports its module)."""
    spec = METHODS[name]
    return getattr(importlib.import_module(spec.module), spec.cls)


def method_name(run: dict) -> str:
    """The method a run's settings name: `ogd: true` is OGD, else `method` (default naive)."""
    if run.get("ogd"):
        return "ogd"
    return run.get("method", "naive")


def build_method(run: dict, model, seed: int):
    """A fresh method object for `run`, for `model` (on its device), seeded from `seed`."""
    return method_class(method_name(run))(run, model, seed)
