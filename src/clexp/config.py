"""The study configuration as plain data: resolve an experiment, check what the schema cannot.

`config.yaml` holds `defaults` and named `experiments` (overrides of the defaults). The JSON
schema (`workflow/schemas/config.schema.yaml`) checks keys and types; `check_config` checks the
relations between values (a class in two tasks, an unknown experiment in the selection, ...).
`resolve_experiment` turns one named entry into the complete settings of one run.

An experiment may name another as its `base`: it then starts from that experiment's entry (and
its base's, recursively) and overrides some keys. Method options (`method`, `ewc_lambda`, ...,
see `clexp.methods.registry`) enter the resolved settings only where they matter: the options
of the experiment's method, and for OGD, `reset_optimizer`, LwF's `lwf_weighting` and the
protocol settings `hidden` (the hidden widths) and `iterations` (optimizer steps per task) only
when they differ from the behaviour that existed before these options (`ogd_memory` only with
`ogd_directions: gtl`, where it is always given). Settings that did not change therefore keep
their config hash, and their checkpoints stay valid.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

from clexp.errors import ConfigError
from clexp.methods.registry import METHODS, all_options

NUM_CLASSES = 10
DATASETS = ("mnist", "fashion_mnist")
DEFAULT_TASKS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 0]]

# Settings of an experiment when neither `defaults` nor the experiment gives them.
DEFAULT_OPTIONS = {
    "joint": False,
    "norm": "none",
    "dropout": 0.0,
    "l1_activation": 0.0,
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 0.01,
    "momentum": 0.0,
    "lr_factor_after_first_task": 1.0,
    "batch_size": 64,
    "epochs": 4,
    "stop_at_train_acc": None,
    "max_epochs": 30,
    "ogd": False,
    "tasks": None,
    "probe_unseen": [],
    "probe_all_classes": False,
    "tsne_h1": False,
}

# Options that only change what the evaluation measures: editing them must not retrain.
EVALUATION_KEYS = ("probe_unseen", "probe_all_classes", "tsne_h1")

# Settings added after experiments existed, with the value that trains as before them: they
# enter a run's resolved settings (and config hash) only when they differ from it.
DEFAULT_HIDDEN = (120, 84)  # the study's hidden widths (clexp.model)
PROTOCOL_DEFAULTS = {"hidden": list(DEFAULT_HIDDEN), "iterations": None}
# Method options added after experiments of their method existed (all of OGD's), which enter
# the resolved settings only when they differ from their default.
LATER_METHOD_OPTIONS = {"ogd": set(METHODS["ogd"].options), "lwf": {"lwf_weighting"}}

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


# Environment variable naming the data folder for every run of this user (set once in the
# shell's start-up file); `data_root` given on the command line still wins.
DATA_ROOT_VARIABLE = "CLEXP_DATA_ROOT"


def apply_data_root_variable(config: dict, command_line: Mapping, environ=None) -> None:
    """Set `data_root` from $CLEXP_DATA_ROOT, unless `command_line` (the settings given with
    --config or --configfile) sets it. Where the data is found never changes results, so
    this only spares users from repeating the folder."""
    environ = os.environ if environ is None else environ
    value = environ.get(DATA_ROOT_VARIABLE)
    if value and "data_root" not in command_line:
        config["data_root"] = value


def selected_experiments(config: Mapping) -> list[str]:
    """Names of the experiments to build: `selected_experiments`, or every experiment."""
    chosen = config.get("selected_experiments") or list(config["experiments"])
    return list(chosen)


def _check_tasks(tasks, key: str) -> None:
    if not tasks:
        raise ConfigError(f"{key}: the task list is empty; give at least one task, e.g. [[1, 2]].")
    seen: dict[int, int] = {}
    for index, task in enumerate(tasks):
        if not task:
            raise ConfigError(
                f"{key}[{index}]: task {index + 1} is empty; every task needs at least one class."
            )
        for cls in task:
            if not 0 <= cls < NUM_CLASSES:
                raise ConfigError(
                    f"{key}[{index}]: class {cls} is outside the dataset; "
                    f"allowed classes are 0..{NUM_CLASSES - 1}."
                )
            if cls in seen:
                raise ConfigError(
                    f"{key}: class {cls} appears in task {seen[cls] + 1} and in task {index + 1}; "
                    "each class belongs to exactly one task."
                )
            seen[cls] = index


def check_config(config: Mapping) -> None:
    """Check the relations between values that the JSON schema cannot express.

    Raises ConfigError naming the key path and what is allowed.
    """
    _check_tasks(config["tasks"], "tasks")
    experiments = config["experiments"]
    if not experiments:
        raise ConfigError("experiments: no experiment is defined; add at least one named entry.")
    for name in config.get("selected_experiments") or []:
        if name not in experiments:
            raise ConfigError(
                f"selected_experiments: unknown experiment {name!r}; "
                f"defined experiments are: {', '.join(sorted(experiments))}."
            )
    defaults = config.get("defaults") or {}
    if "base" in defaults:
        raise ConfigError("defaults.base: `base` names another experiment and is only allowed "
                          "in an experiment's entry; remove it from defaults.")
    if "tune" in defaults:
        raise ConfigError("defaults.tune: a grid is chosen per experiment and is only allowed "
                          "in an experiment's entry; move it to the experiments to tune.")
    for name in experiments:
        grid = _check_grid(config, name)
        if grid:
            from clexp.tuning import expand_grid

            resolve_experiment(config, name)  # the placeholder experiment resolves too
            points = expand_grid(config, name)
            checked = [(run, f"experiments.{name}[tune point {point}]")
                       for point, run in points.items()]
        else:
            checked = [(resolve_experiment(config, name), f"experiments.{name}")]
        for run, key in checked:
            _check_run(config, name, run, key)


def _check_grid(config: Mapping, name: str) -> dict:
    """Check experiment `name`'s `tune` grid (the settings it may tune, each value against
    that setting's schema); return it (empty: none)."""
    from clexp.tuning import UNTUNABLE

    grid = tune_grid(config, name)
    if not grid:
        return {}
    key = f"experiments.{name}.tune"
    options = _load_schema()["$defs"]["options"]["properties"]
    entry = experiment_entry(config, name)
    for setting, values in grid.items():
        if setting in UNTUNABLE:
            raise ConfigError(f"{key}.{setting}: cannot be tuned ({setting} "
                              f"{UNTUNABLE[setting]}); remove it from tune.")
        if setting not in options:
            tunable = sorted(set(options) - set(UNTUNABLE))
            raise ConfigError(f"{key}: unknown setting {setting!r}; tunable settings: "
                              f"{', '.join(tunable)}.")
        if not isinstance(values, list) or len(values) < 2:
            raise ConfigError(f"{key}.{setting}: give a list of at least 2 values to choose "
                              f"from, got {values!r}.")
        if setting in entry:
            raise ConfigError(f"experiments.{name}.{setting}: is both set ({entry[setting]!r}) "
                              f"and tuned ({key}.{setting}); remove one of them.")
        validator = _strict_validator(options[setting])
        for index, value in enumerate(values):
            for error in validator.iter_errors(value):
                text = _describe(error).split(": ", 1)[-1]
                raise ConfigError(f"{key}.{setting}[{index}]: {text}")
    return grid


def _check_run(config: Mapping, name: str, run: Mapping, key: str) -> None:
    """The checks of one experiment's resolved settings (each grid point of a tuned one)."""
    experiments = config["experiments"]
    if experiments[name] and "tasks" in experiments[name]:
        _check_tasks(run["tasks"], f"{key}.tasks")
    for cls in run["probe_unseen"]:
        if not 0 <= cls < NUM_CLASSES:
            raise ConfigError(
                f"{key}.probe_unseen: class {cls} is outside the dataset; "
                f"allowed classes are 0..{NUM_CLASSES - 1}."
            )
    if run.get("scenario") == "task":
        single = [t for t in run["scenario_tasks"] if len(t) < 2]
        if single:
            raise ConfigError(
                f"{key}.scenario: task {single[0]} has one class, and a task-incremental "
                "task is scored on its own outputs only: one output has nothing to learn "
                "(its loss is always 0); give every task two or more classes, or use "
                "scenario: class.")
    if run["stop_at_train_acc"] is None and run["epochs"] < 1:
        raise ConfigError(f"{key}.epochs: must be at least 1.")
    given = set(experiment_entry(config, name)) | set(tune_grid(config, name))
    _check_protocol(run, given, key)
    _check_options_act(run, given, key)
    per_class = (config.get("data_subset") or {}).get("train_images_per_class")
    single = [t for t in run["tasks"] if len(t) == 1]
    if per_class == 1 and single:
        raise ConfigError(
            f"data_subset.train_images_per_class: 1 leaves experiment {name}'s task of "
            f"class {single[0]} one training image, and a batch needs two (BatchNorm "
            "cannot normalise one); give at least 2.")


# Options that act only together with another setting: option -> (does it act in `run`,
# the value that changes nothing (None: any value set by the experiment is an error), why).
_DEPENDENT_OPTIONS = {
    "ewc_gamma": (lambda run: run.get("ewc_online", True), 1.0,
                  "decays online EWC's running Fisher and acts only with ewc_online: true"),
    "momentum": (lambda run: run["optimizer"] == "sgd", 0.0,
                 "acts only with optimizer: sgd (Adam and AdamW have their own moment "
                 "estimates)"),
    "max_epochs": (lambda run: run["stop_at_train_acc"] is not None, None,
                   "acts only with stop_at_train_acc (without it every task trains `epochs`)"),
    "epochs": (lambda run: run["stop_at_train_acc"] is None, None,
               "is not used with stop_at_train_acc, which trains up to max_epochs instead"),
    "lr_factor_after_first_task": (lambda run: len(run["tasks"]) > 1, 1.0,
                                   "acts from the second task on, and this experiment trains "
                                   "one task"),
    "reset_optimizer": (lambda run: len(run["tasks"]) > 1, False,
                        "acts from the second task on, and this experiment trains one task"),
    "ogd_memory": (lambda run: run.get("ogd_directions") == "gtl", None,
                   "is the number of images per task whose gradients OGD-GTL stores, and acts "
                   "only with ogd_directions: gtl (the notebook's variant stores one mean "
                   "gradient per task)"),
}
# A method's strength at which it adds nothing to plain training.
_METHOD_STRENGTHS = {"ewc": "ewc_lambda", "si": "si_c", "lwf": "lwf_alpha"}


def _check_options_act(run: Mapping, given: set, key: str) -> None:
    """Raise ConfigError for a setting of `run` that cannot act: it would change the config
    hash and train exactly as without it. `given`: the keys the experiment (with its bases)
    sets; a key set only in `defaults` is an error where its value is not the neutral one."""
    def where(option):
        return "" if option in given else " (set in defaults)"

    for option, (acts, neutral, why) in _DEPENDENT_OPTIONS.items():
        if option not in run or acts(run):
            continue
        if option in given or (neutral is not None and run[option] != neutral):
            raise ConfigError(f"{key}.{option}: {run[option]!r}{where(option)} {why}; remove "
                              "it.")
    method = "ogd" if run.get("ogd") else run.get("method", "naive")
    if method != "naive" and len(run["tasks"]) == 1:
        option = "ogd" if method == "ogd" and "method" not in given else "method"
        raise ConfigError(f"{key}.{option}: {method}{where(option)} acts between tasks, and "
                          "this experiment trains one task (joint: true or a single task); "
                          "remove it.")
    strength = _METHOD_STRENGTHS.get(method)
    if strength is not None and run.get(strength) == 0:
        raise ConfigError(f"{key}.{strength}: 0{where(strength)} turns {method} off (it trains "
                          f"as method: naive); give a strength > 0, or use method: naive.")
    if method == "agem" and run["agem_sample_size"] > run["buffer_size"]:
        raise ConfigError(
            f"{key}.agem_sample_size: {run['agem_sample_size']}{where('agem_sample_size')} is "
            f"more than buffer_size ({run['buffer_size']}): the reference gradient uses at most "
            "the whole buffer; give agem_sample_size <= buffer_size.")
    probed = run["probe_unseen"]
    if probed:
        first = sorted(c for c in probed if c in run["tasks"][0])
        if first:
            raise ConfigError(
                f"{key}.probe_unseen: class(es) {first} are trained in the first task, so they "
                "are never unseen at a checkpoint; list classes of later tasks (or none), e.g. "
                f"those of the last task {run['tasks'][-1]}.")
        if len(probed) < 2:
            raise ConfigError(
                f"{key}.probe_unseen: {probed} names one class; a probe separates at least two "
                "classes, so it would be null at every checkpoint; list two or more, or none.")


def _check_protocol(run: Mapping, given: set, key: str) -> None:
    """The checks of the protocol settings `iterations`, `optimizer: adam` and
    `lwf_weighting: paper`: ConfigError for a combination that means nothing, naming the key
    and the fix. `given`: the keys the experiment (with its bases) sets."""
    def where(option):
        return "" if option in given else " (set in defaults)"

    if run.get("iterations") is not None:
        if run["stop_at_train_acc"] is not None:
            raise ConfigError(
                f"{key}.stop_at_train_acc: {run['stop_at_train_acc']!r}"
                f"{where('stop_at_train_acc')} stops a task after an epoch, and iterations "
                f"({run['iterations']}) trains a fixed number of optimizer steps per task: two "
                "budgets for one task; remove one of them.")
        if "epochs" in given:
            raise ConfigError(
                f"{key}.epochs: {run['epochs']!r} is not used with iterations "
                f"({run['iterations']} optimizer steps per task, however many passes through "
                "the task's data they take); remove it, or remove iterations.")
    if run["optimizer"] == "adam" and run["weight_decay"] != 0:
        raise ConfigError(
            f"{key}.weight_decay: {run['weight_decay']!r}{where('weight_decay')} with "
            "optimizer: adam would be torch's Adam weight decay, an L2 penalty added to the "
            "gradient (and rescaled by Adam's per-parameter step), not the decoupled decay "
            "weight_decay means with adamw; set weight_decay: 0 in the experiment, or use "
            "optimizer: adamw.")
    if run.get("lwf_weighting") == "paper" and "lwf_alpha" in given:
        raise ConfigError(
            f"{key}.lwf_alpha: lwf_weighting: paper weights the terms itself (cross-entropy "
            "x 1/t, distillation x (1 - 1/t) T^2, t the tasks so far), so lwf_alpha is not "
            "used; remove it, or use lwf_weighting: study.")


def resolve_experiment(config: Mapping, name: str, point: tuple | None = None) -> dict:
    """The complete settings of experiment `name`: its overrides merged over `defaults`.

    A joint experiment (`joint: true`) trains one task holding every class of its tasks. An
    experiment with `tune` (clexp.tuning) holds None for each tuned setting and `tuned`; with
    `point` (its name, the tuned settings' values) the settings of that grid point instead,
    named `<experiment>.<point>`.
    """
    if name not in config["experiments"]:
        raise ConfigError(
            f"experiments: unknown experiment {name!r}; "
            f"defined experiments are: {', '.join(sorted(config['experiments']))}."
        )
    run = copy.deepcopy(DEFAULT_OPTIONS)
    defaults = copy.deepcopy(dict(config["defaults"] or {}))
    entry = experiment_entry(config, name)
    grid = entry.pop("tune", None) or {}
    given = set(entry) | set(grid)
    run.update(defaults)
    run.update(entry)
    if grid:
        # Placeholders, filled at job time (clexp.tuning.with_selection), or a grid point's values.
        run.update(point[1] if point else dict.fromkeys(grid))
    _resolve_method(run, given, f"experiments.{name}")
    for option, unchanged in PROTOCOL_DEFAULTS.items():
        if option in run and (run[option] == unchanged or run[option] is None):
            del run[option]
    tasks = run.get("tasks") or config["tasks"]
    # class-IL (the default) adds no key: the settings, and hashes, of before scenarios
    scenario = run.pop("scenario", "class")
    if scenario != "class":
        run["scenario"] = scenario
        # the outputs follow the tasks as configured, also for joint training (one task)
        run["scenario_tasks"] = [list(task) for task in tasks]
    if run.get("joint"):
        tasks = [[cls for task in tasks for cls in task]]
    run["tasks"] = [list(task) for task in tasks]
    run["name"] = f"{name}.{point[0]}" if grid and point else name
    run["dataset"] = config["dataset"]
    if grid and not point:
        from clexp.tuning import tuned_placeholder

        run["tuned"] = tuned_placeholder(name, grid)
    return dict(sorted(run.items()))


def tune_grid(config: Mapping, name: str) -> dict:
    """Experiment `name`'s grid (setting -> values; empty when it tunes nothing)."""
    return experiment_entry(config, name).get("tune") or {}


def experiment_entry(config: Mapping, name: str, chain: tuple = ()) -> dict:
    """Experiment `name`'s own keys merged over those of its `base` chain (without `base`)."""
    experiments = config["experiments"]
    entry = dict(experiments[name] or {})
    base = entry.pop("base", None)
    if base is None:
        return copy.deepcopy(entry)
    key = f"experiments.{name}.base"
    if base not in experiments:
        raise ConfigError(f"{key}: unknown experiment {base!r}; defined experiments are: "
                          f"{', '.join(sorted(experiments))}.")
    if base in chain or base == name:
        cycle = " -> ".join([*chain, name, base])
        raise ConfigError(f"{key}: the bases form a cycle ({cycle}); an experiment cannot be "
                          "its own base.")
    merged = experiment_entry(config, base, (*chain, name))
    merged.update(copy.deepcopy(entry))
    return merged


def _resolve_method(run: dict, given: set, key: str) -> None:
    """Normalise the method keys of `run` in place (see the module docstring).

    `given` holds the keys the experiment itself sets (with its bases): a method option it sets
    for another method is an error; one set in `defaults` only applies where it fits.
    """
    method = run.pop("method", "naive")
    if method not in METHODS:
        raise ConfigError(f"{key}.method: unknown method {method!r}; "
                          f"allowed values: {', '.join(METHODS)}.")
    if method == "ogd":
        run["ogd"] = True
    elif run["ogd"] and method != "naive":
        raise ConfigError(f"{key}: `ogd: true` and `method: {method}` name two methods; "
                          "keep one (method: ogd is the same as ogd: true).")
    chosen = "ogd" if run["ogd"] else method
    values = {k: run.pop(k) for k in list(run) if k in all_options()}
    for option in values:
        if option not in METHODS[chosen].options and option in given:
            owners = [m for m, spec in METHODS.items() if option in spec.options]
            raise ConfigError(f"{key}.{option}: an option of method {' / '.join(owners)}, but "
                              f"this experiment's method is {chosen}; remove it or set "
                              f"method: {owners[0]}.")
    later = LATER_METHOD_OPTIONS.get(chosen, set())
    for option, default in METHODS[chosen].options.items():
        value = values.get(option, default)
        if option not in later or value != default:
            run[option] = value
    if run.get("lwf_weighting") == "paper":
        del run["lwf_alpha"]  # the paper's weighting replaces it (`_check_protocol`)
    if chosen == "ogd":
        # OGD-GTL's memory is part of its settings, also at the default; the notebook's
        # variant has none (its settings and hash stay those of before), unless the
        # experiment sets one: then the check of options that cannot act names it.
        gtl = run.get("ogd_directions") == "gtl"
        run.pop("ogd_memory", None)
        if gtl or "ogd_memory" in given:
            run["ogd_memory"] = values.get("ogd_memory", METHODS["ogd"].options["ogd_memory"])
    if chosen not in ("naive", "ogd"):
        run["method"] = chosen
    if not run.get("reset_optimizer", False):
        run.pop("reset_optimizer", None)


def training_config(run: Mapping) -> dict:
    """The part of a run's settings that training depends on (not the evaluation options)."""
    return {key: value for key, value in run.items() if key not in EVALUATION_KEYS}


def config_hash(settings: Mapping) -> str:
    """A short stable hash of settings (canonical JSON), recorded in every checkpoint."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def seen_classes(tasks, task: int) -> list[int]:
    """Classes trained in tasks 1..task (1-based), in task order."""
    return [cls for t in tasks[:task] for cls in t]


# YAML 1.1's boolean spellings (what PyYAML reads in config.yaml), case-insensitive.
_BOOLEAN_WORDS = {
    **dict.fromkeys(("true", "yes", "on"), True),
    **dict.fromkeys(("false", "no", "off"), False),
}
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
_NUMBER_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _load_schema(schema_path: str | Path = SCHEMA_PATH) -> dict:
    import yaml

    return yaml.safe_load(Path(schema_path).read_text())


def _types(node: Mapping) -> set[str]:
    kind = node.get("type", ())
    return {kind} if isinstance(kind, str) else set(kind)


def _from_text(value: str, types: set[str]):
    """`value` as the boolean or number a YAML file would have read, or `value` unchanged."""
    text = value.strip()
    if "boolean" in types and text.lower() in _BOOLEAN_WORDS:
        return _BOOLEAN_WORDS[text.lower()]
    if types & {"integer", "number"} and _INTEGER_TEXT.fullmatch(text):
        return int(text)
    # Also for an integer key: 0.5 typed where a whole number belongs is a number, and the
    # schema's message should say so (not "got str '0.5'").
    if types & {"integer", "number"} and _NUMBER_TEXT.fullmatch(text):
        return float(text)
    return value


def normalize_config(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Give strings the type the schema declares for their key, in place; return `config`.

    Snakemake's `--config key=value` turns only `True`/`False` into booleans and reads nested
    values as strings, so `--config download=false` would arrive as the (truthy) string
    'false'. For a key the schema types as boolean, YAML's spellings true/false, yes/no, on/off
    (any case) become booleans, as they would in config.yaml; for a key typed integer or
    number, a string that is a plain decimal number becomes that number (for an integer key
    too, so that `0.5` is rejected as a number that is not whole). The values of a `tune`
    grid are typed by their setting, which also reads `1e4` (a string to PyYAML) as the
    number. Anything else is left for the schema to reject, naming the key.
    """
    schema = _load_schema(schema_path)

    def resolve(node):
        while isinstance(node, Mapping) and "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
        return node if isinstance(node, Mapping) else {}

    def walk(node, value):
        node = resolve(node)
        if isinstance(value, str):
            return _from_text(value, _types(node))
        if isinstance(value, dict):
            properties = node.get("properties", {})
            extra = node.get("additionalProperties")
            for key in value:
                child = properties.get(key, extra if isinstance(extra, Mapping) else None)
                if child is not None:
                    value[key] = walk(child, value[key])
        elif isinstance(value, list) and isinstance(node.get("items"), Mapping):
            value[:] = [walk(node["items"], item) for item in value]
        return value

    walk(schema, config)
    # A grid's values take the type of their own setting (PyYAML reads 1e4 as a string).
    options = schema["$defs"]["options"]["properties"]
    for entry in (config.get("experiments") or {}).values():
        grid = entry.get("tune") if isinstance(entry, dict) else None
        if not isinstance(grid, dict):
            continue
        for setting, values in grid.items():
            if setting in options and isinstance(values, list):
                values[:] = [walk(options[setting], value) for value in values]
    return config


def _strict_validator(schema: dict):
    """A JSON-schema validator where an integer is an int (JSON Schema also counts 2.0) and
    every number is finite (NaN passes every minimum/maximum and trains like 0)."""
    from jsonschema import Draft202012Validator, validators

    base = Draft202012Validator.TYPE_CHECKER

    def is_integer(checker, value):
        return isinstance(value, int) and not isinstance(value, bool)

    def is_number(checker, value):
        return base.is_type(value, "number") and math.isfinite(value)

    checker = base.redefine_many({"integer": is_integer, "number": is_number})
    return validators.extend(Draft202012Validator, type_checker=checker)(schema)


def _key_path(error) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def _describe(error) -> str:
    """One schema error as a sentence naming the key path and what is allowed."""
    from jsonschema.exceptions import best_match

    if error.context:  # anyOf / oneOf: report the branch that came closest
        return _describe(best_match(error.context))
    path, value, kind = _key_path(error), error.instance, error.validator
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(value) - set(allowed))
        return (f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"allowed keys: {', '.join(allowed)}")
    if kind == "enum":
        return f"{path}: {shown} is not allowed; allowed values: {error.validator_value}"
    if kind == "type":
        if isinstance(value, float) and not math.isfinite(value):
            return f"{path}: {shown} is not a finite number; give a number such as 0.1"
        if isinstance(value, float) and value.is_integer() and "integer" in str(
                error.validator_value):
            return (f"{path}: expected integer, got float {shown}; "
                    f"write it without a decimal point ({int(value)})")
        if isinstance(value, float) and "integer" in str(error.validator_value):
            return f"{path}: expected integer, got the number {shown}; give a whole number"
        return f"{path}: expected {error.validator_value}, got {type(value).__name__} {shown}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        relation = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">",
                    "exclusiveMaximum": "<"}[kind]
        return f"{path}: {shown} is out of range; allowed values are {relation} " \
               f"{error.validator_value}"
    if kind in ("minItems", "minProperties") and error.validator_value > 1:
        return f"{path}: needs at least {error.validator_value} items, got {len(value)}"
    if kind in ("minItems", "minProperties"):
        return f"{path}: must not be empty"
    if kind == "required":
        return f"{path}: {error.message}"
    if kind == "pattern" or kind == "propertyNames":
        return (f"{path}: {shown} is not a valid name (letters, digits, '_', '.', '-'; "
                "starting with a letter, digit or '_')")
    return f"{path}: {error.message if len(error.message) <= 160 else error.message[:157]}"


def validate_config(config: Mapping, schema_path: str | Path = SCHEMA_PATH) -> None:
    """Check `config` against the JSON schema; raise ConfigError listing every violation,
    each with its key path and the allowed values."""
    schema = _load_schema(schema_path)
    errors = sorted(_strict_validator(schema).iter_errors(config),
                    key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = "\n".join(f"  - {_describe(error)}" for error in errors)
        raise ConfigError(
            f"the configuration does not match workflow/schemas/{Path(schema_path).name}; "
            f"fix these keys:\n{lines}"
        )


def check_device(config: Mapping) -> None:
    """Raise ConfigError when `device: cuda` is asked for where torch sees no CUDA device
    (every job would fail; better before the first one)."""
    if config.get("device") != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            "device: 'cuda' is set, but torch finds no CUDA device on this machine; "
            "use device: auto (CUDA when present, else CPU) or device: cpu."
        )


def duplicate_keys(path: str | Path) -> list[str]:
    """Keys that appear twice in one mapping of a YAML file, as 'key path (line N)'.

    YAML loaders silently keep the last of duplicate keys, so a copied experiment entry whose
    name was not changed would replace the original without a word.
    """
    import yaml

    found: list[str] = []

    def walk(node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                if key in seen:
                    found.append(f"{child} (line {key_node.start_mark.line + 1})")
                seen.add(key)
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, f"{path}.{index}")

    walk(yaml.compose(Path(path).read_text()), "")
    return found


def check_config_files(paths) -> None:
    """Raise ConfigError when a config file defines a key twice (e.g. an experiment name)."""
    for path in paths:
        duplicates = duplicate_keys(path)
        if duplicates:
            raise ConfigError(
                f"{path}: key(s) defined twice: {', '.join(duplicates)}; "
                "give every experiment (and every key) a unique name."
            )
