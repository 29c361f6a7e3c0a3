# Configuration checks, every output path pattern and the input functions.
import atexit
import os
import sys
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

SOURCE_DIR = Path(workflow.basedir) / "src"
# Jobs import clexp from this checkout, so the code they run is the code declared below.
sys.path.insert(0, str(SOURCE_DIR))
# (Set, not read: Snakefiles are re-evaluated on cluster nodes, which sets it there too.)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        [str(SOURCE_DIR)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
)

from clexp.comparisons import comparison_groups, section_figures  # noqa: E402
from clexp.config import (  # noqa: E402
    DEFAULT_OPTIONS,
    apply_data_root_variable,
    check_config,
    check_config_files,
    check_device,
    normalize_config,
    resolve_experiment,
    selected_experiments,
    training_config,
    validate_config,
)
from clexp.errors import ConfigError  # noqa: E402
from clexp import jobserver, kept  # noqa: E402
from clexp.tuning import SELECTION_FILE, expand_grid, grid_points, tuning_settings  # noqa: E402
from clexp.scheduling import coalesce_reevaluation_timers  # noqa: E402

# Snakemake's scheduler starts one more never-ending re-check timer chain per finished job,
# which by the middle of the study took a third of a core: one pending timer instead.
coalesce_reevaluation_timers()

try:
    check_config_files(workflow.configfiles)
    apply_data_root_variable(config, workflow.config_settings.overwrite_config)
    # A relative data_root names a folder of the project (beside config.yaml), also when a
    # profile runs the workflow in another directory (its `directory:`).
    root = config.get("data_root")
    if (
        isinstance(root, str)
        and root
        and not os.path.isabs(os.path.expanduser(root))
        and Path.cwd().resolve() != Path(workflow.basedir).resolve()
    ):
        config["data_root"] = os.path.join(os.path.relpath(workflow.basedir), root)
    # --config download=false arrives as the string 'false': give it the schema's type.
    normalize_config(config)
    # clexp's check first: it names every bad key path and the allowed values.
    validate_config(config)
    validate(config, "../schemas/config.schema.yaml")  # fills the schema's defaults
    check_config(config)
except ConfigError as error:
    raise WorkflowError(f"Invalid configuration: {error}") from None

EXPERIMENTS = selected_experiments(config)
RUNS = {name: resolve_experiment(config, name) for name in EXPERIMENTS}
SEEDS = config["seeds"]
# Tuned experiments (a `tune` grid): experiment -> point name -> the point's settings.
TUNING = tuning_settings(config)
GRIDS = {name: points for name in EXPERIMENTS if (points := expand_grid(config, name))}
# Seeds whose checkpoints get the per-checkpoint analysis and figures (the first seed when
# none of analysis.seeds is run); every seed gets metrics and probes.
ANALYSIS_SEEDS = [s for s in SEEDS if s in config["analysis"]["seeds"]] or SEEDS[:1]


wildcard_constraints:
    experiment="[A-Za-z0-9_][A-Za-z0-9_.-]*",
    seed=r"\d+",
    task=r"[1-9]\d*",  # task 0 is the untrained control (UNTRAINED_METRICS)
    point=r"[A-Za-z0-9_][A-Za-z0-9_.+-]*",


# ---- path patterns (one place) ----
DATA_FILE = "results/data/dataset.npz"
DATA_KEEP_DIR = "results/data/kept"  # copies of dataset files, by dataset and subset
CHECKPOINT = "results/{experiment}/seed{seed}/task{task}/checkpoint.pt"
TRAIN_LOG = "results/{experiment}/seed{seed}/task{task}/train_log.csv"
FORGETTING_CURVE = "results/{experiment}/seed{seed}/task{task}/forgetting_curve.csv"
RELATIVE_UPDATES = "results/{experiment}/seed{seed}/task{task}/relative_updates.csv"
GRADIENT_MAPS = "results/{experiment}/seed{seed}/task{task}/gradient_maps.npz"
METRICS = "results/{experiment}/seed{seed}/task{task}/metrics.json"
ANALYSIS = "results/{experiment}/seed{seed}/task{task}/analysis.npz"
# The untrained network of each run, measured like a checkpoint (the control).
UNTRAINED_METRICS = "results/{experiment}/seed{seed}/task0/metrics.json"
CHECKPOINT_FIGURES = {
    name: f"results/{{experiment}}/seed{{seed}}/task{{task}}/figures/{name}.png"
    for name in (
        "forgetting_curve",
        "relative_updates",
        "gradient_maps",
        "probability_profile",
        "latent_map",
        "hidden_features",
        "weight_histograms",
    )
}
ACCURACY_MATRIX = "results/{experiment}/seed{seed}/accuracy_matrix.csv"
ACCURACY_MATRIX_TIL = "results/{experiment}/seed{seed}/accuracy_matrix_til.csv"
LEARNING_CURVES = "results/{experiment}/seed{seed}/learning_curves.csv"
PROBE_TABLE = "results/{experiment}/seed{seed}/probe_table.csv"
RUN_CURVES = "results/{experiment}/seed{seed}/run_curves.csv"
RUN_FIGURES = {
    name: f"results/{{experiment}}/seed{{seed}}/{name}.png" for name in ("learning_curves",)
}
# Figures over the tasks of a run: made for runs of more than one task only.
TASK_FIGURES = {
    name: f"results/{{experiment}}/seed{{seed}}/{name}.png"
    for name in ("accuracy_matrix", "probe_progress", "sparsity", "eval_loss", "bias_stats")
}
SUMMARY = "results/summary.csv"
SUMMARY_BY_EXPERIMENT = "results/summary_by_experiment.csv"
STUDY_TABLES = {
    name: f"results/study/{name}.csv"
    for name in (
        "l1_sweep",
        "weight_decay_sweep",
        "eval_loss_comparison",
        "forward_transfer",
        "representation",
        "scenarios",
    )
}
STUDY_FIGURES = {
    name: f"results/study/{name}.png"
    for name in ("l1_sweep", "weight_decay_sweep", "eval_loss_comparison")
}
# The run's ACC beside a paper's published numbers, when the config names them
# (`published_results`, relative to the project folder: clexp.published).
PUBLISHED_TABLE = "results/study/published.csv"
PUBLISHED_SOURCE = (
    os.path.relpath(os.path.join(workflow.basedir, config["published_results"]))
    if config.get("published_results")
    else None
)
CHECKPOINT_TABLE = "results/study/checkpoints.csv"
UNTRAINED_TABLE = "results/study/untrained.csv"
FINDINGS = "results/study/findings.csv"
COMPARISON_FIGURE = "results/study/comparisons/{section}/{figure}.png"
# section -> experiments compared (seq first), for the sections this run has experiments of
COMPARISONS = comparison_groups(EXPERIMENTS)
# Choosing settings on the validation split (clexp.tuning): one file per grid point and
# selection seed, the selection of each tuned experiment (the pattern its settings name) and
# its sweep figure.
TUNE_POINT = "results/tuning/{experiment}/{point}/seed{seed}/validation.json"
SELECTION = SELECTION_FILE
SWEEP_FIGURE = "results/tuning/{experiment}/sweep.png"
REPORT = "results/report.html"
# Priority of the jobs that follow a checkpoint (evaluation, analysis, figures): they run as
# soon as they are ready. A short queue of ready jobs keeps Snakemake's own scheduling work
# small: every round it sizes the inputs of every ready job.
SOON = 1
LOG_DIR = "results/logs"
BENCHMARK_DIR = "results/benchmarks"
# Each rule's `benchmark:` file (seconds and memory of one job; the report's timing table).
_PER_CHECKPOINT = "{experiment}/seed{seed}/task{task}"
_PER_RUN = "{experiment}/seed{seed}"
BENCHMARKS = {
    "train_task": f"{BENCHMARK_DIR}/train_task/{_PER_CHECKPOINT}.tsv",
    "evaluate_checkpoint": f"{BENCHMARK_DIR}/evaluate_checkpoint/{_PER_CHECKPOINT}.tsv",
    "analyze_checkpoint": f"{BENCHMARK_DIR}/analyze_checkpoint/{_PER_CHECKPOINT}.tsv",
    "plot_checkpoint": f"{BENCHMARK_DIR}/plot_checkpoint/{_PER_CHECKPOINT}.tsv",
    "evaluate_untrained": f"{BENCHMARK_DIR}/evaluate_untrained/{_PER_RUN}.tsv",
    "plot_run": f"{BENCHMARK_DIR}/plot_run/{_PER_RUN}.tsv",
    "plot_run_tasks": f"{BENCHMARK_DIR}/plot_run_tasks/{_PER_RUN}.tsv",
    "prepare_data": f"{BENCHMARK_DIR}/prepare_data.tsv",
    "summarize": f"{BENCHMARK_DIR}/summarize.tsv",
    "checkpoint_table": f"{BENCHMARK_DIR}/checkpoint_table.tsv",
    "plot_comparisons": f"{BENCHMARK_DIR}/plot_comparisons.tsv",
    "findings": f"{BENCHMARK_DIR}/findings.tsv",
    "plot_study": f"{BENCHMARK_DIR}/plot_study.tsv",
    "report": f"{BENCHMARK_DIR}/report.tsv",
    "tune_point": f"{BENCHMARK_DIR}/tune_point/{{experiment}}/{{point}}/seed{{seed}}.tsv",
    "select_setting": f"{BENCHMARK_DIR}/select_setting/{{experiment}}.tsv",
}
CONDA_ENV = "../envs/clexp.yaml"


def _heal_dataset():
    """A damaged dataset file (flipped bytes, truncation) looks complete to Snakemake, and every
    job would fail on it: remove it, so that this run rebuilds it (checksum: clexp.data).
    Also in a dry run (which is not known yet while the Snakefile is read): the file is
    unusable either way, and the dry run then shows what the real run will do."""
    from clexp.data import dataset_is_intact

    if not workflow.is_main_process or dataset_is_intact(DATA_FILE):
        return
    os.remove(DATA_FILE)
    logger.warning(f"{DATA_FILE} was damaged (checksum or zip error): deleted, to be rebuilt.")


_heal_dataset()

# ---- library code each kind of job runs (Snakemake does not track imports itself) ----
_CORE = [
    "__init__.py",
    "config.py",
    "errors.py",
    "files.py",
    "jobserver.py",
    "joblog.py",
    "threads.py",
    "methods/__init__.py",
    "methods/registry.py",
]
_METHODS = [f"methods/{m}.py" for m in ("base", "ogd", "ewc", "si", "lwf", "buffer", "er", "agem")]
# training.py imports every method (the registry builds any of them)
_TORCH = _CORE + [
    "data.py",
    "model.py",
    "scenario.py",
    "checkpoint.py",
    "training.py",
    "ogd.py",
    *_METHODS,
]
CODE = {
    "data": [str(SOURCE_DIR / "clexp" / m) for m in _CORE + ["data.py"]],
    # kept.py: a resubmitted cluster job restores the training tasks it had finished
    "train": [str(SOURCE_DIR / "clexp" / m) for m in _TORCH + ["kept.py", "tuning.py"]],
    # a grid point: the training code, the validation split and its measurement
    "tune": [str(SOURCE_DIR / "clexp" / m) for m in _TORCH + ["tuning.py"]],
    "select": [str(SOURCE_DIR / "clexp" / m) for m in _CORE + ["tuning.py", "figures.py"]],
    "evaluate": [
        str(SOURCE_DIR / "clexp" / m)
        for m in _TORCH + ["evaluation.py", "metrics.py", "probes.py", "analysis.py", "tuning.py"]
    ],
    "figures": [
        str(SOURCE_DIR / "clexp" / m)
        for m in _CORE + ["figures.py", "summary.py", "metrics.py", "study.py", "comparisons.py"]
    ],
    # the run beside a paper's numbers: its own kind, so that the figures do not depend on it
    "published": [str(SOURCE_DIR / "clexp" / m) for m in _CORE + ["study.py", "published.py"]],
    # the claims and their statistics: editing a claim reruns only the findings and the report
    "findings": [str(SOURCE_DIR / "clexp" / m) for m in _CORE + ["findings.py"]],
    "report": [
        str(SOURCE_DIR / "clexp" / m)
        for m in _CORE
        + [
            "report.py",
            "summary.py",
            "bench.py",
            "findings.py",
            "comparisons.py",
            "templates/page.html.j2",
            "templates/findings.html.j2",
            "templates/tuning.html.j2",
            "tuning.py",
            "templates/parts.html.j2",
            "templates/scenarios.html.j2",
            "templates/published.html.j2",
            "published.py",
        ]
    ],
}


# Relative to the working directory, so that a moved or copied project (or the same checkout
# under another mount point) keeps its inputs, and so reruns nothing.
CODE_FILES = {kind: [os.path.relpath(path) for path in paths] for kind, paths in CODE.items()}
# What a job depends on: one digest file per kind of job (rule code_digest), rewritten when
# one of its files changes. ~20 code files as the input of each of ~1600 jobs made up half of
# the time Snakemake spends building the DAG (every start, every dry run).
CODE_DIGEST = "results/code/{kind}.sha256"
CODE = {kind: CODE_DIGEST.format(kind=kind) for kind in CODE_FILES}


# ---- input functions ----
def num_tasks(experiment):
    return len(RUNS[experiment]["tasks"])


def run_tasks(experiment):
    return range(1, num_tasks(experiment) + 1)


def previous_checkpoint(wildcards):
    task = int(wildcards.task)
    if task == 1:
        return []
    return CHECKPOINT.format(experiment=wildcards.experiment, seed=wildcards.seed, task=task - 1)


def run_files(pattern):
    """Input function: `pattern` for every task of one run."""

    def files(wildcards):
        return [
            pattern.format(experiment=wildcards.experiment, seed=wildcards.seed, task=t)
            for t in run_tasks(wildcards.experiment)
        ]

    return files


def all_runs(pattern, seeds=None):
    """`pattern` for every selected experiment and seed (or `seeds`)."""
    return [
        pattern.format(experiment=e, seed=s)
        for e in EXPERIMENTS
        for s in (SEEDS if seeds is None else seeds)
    ]


def multi_task_runs(pattern, seeds=None):
    """`pattern` for every seed (or `seeds`) of every selected experiment of more than one
    task."""
    return [
        pattern.format(experiment=e, seed=s)
        for e in EXPERIMENTS
        for s in (SEEDS if seeds is None else seeds)
        if num_tasks(e) > 1
    ]


def comparison_figures():
    """Every comparison figure of this run: (section, figure name, path)."""
    return [
        (section, name, COMPARISON_FIGURE.format(section=section, figure=name))
        for section in COMPARISONS
        for name in section_figures(section)
    ]


def protocol_settings():
    """The defaults every experiment is compared with, and each experiment's settings."""
    defaults = dict(DEFAULT_OPTIONS, **(config["defaults"] or {}))
    defaults["tasks"] = config["tasks"]
    # A tuned setting reads "tuned" (its value is chosen at job time; the tuning section
    # of the report shows it).
    shown = {
        e: {
            k: ("tuned" if k in run.get("tuned", {}).get("settings", []) else v)
            for k, v in run.items()
            if k != "tuned"
        }
        for e, run in RUNS.items()
    }
    return {"defaults": defaults, "experiments": shown}


def run_benchmarks():
    """The benchmark files of the jobs this run's report depends on (the report's own is not
    written yet): what its timing table reads, so that files of experiments built earlier in
    this folder, or stray files, are not counted."""
    files = [
        BENCHMARKS[name]
        for name in ("prepare_data", "summarize", "checkpoint_table", "findings", "plot_study")
    ]
    if comparison_figures():
        files.append(BENCHMARKS["plot_comparisons"])
    for name in ("train_task", "evaluate_checkpoint"):
        files += all_checkpoint_files(BENCHMARKS[name])
    for name in ("analyze_checkpoint", "plot_checkpoint"):
        files += all_checkpoint_files(BENCHMARKS[name], ANALYSIS_SEEDS)
    files += all_runs(BENCHMARKS["evaluate_untrained"]) + all_runs(BENCHMARKS["plot_run"])
    files += multi_task_runs(BENCHMARKS["plot_run_tasks"], ANALYSIS_SEEDS)
    files += tuning_files(BENCHMARKS["tune_point"]) + tuned_experiments(
        BENCHMARKS["select_setting"]
    )
    return files


def tuned_experiments(pattern):
    """`pattern` for every selected experiment with a `tune` grid."""
    return [pattern.format(experiment=e) for e in GRIDS]


def tuning_files(pattern, experiment=None):
    """`pattern` for every grid point and selection seed of `experiment` (or of every tuned
    experiment)."""
    return [
        pattern.format(experiment=e, point=p, seed=s)
        for e in ([experiment] if experiment else GRIDS)
        for p in GRIDS[e]
        for s in TUNING["selection_seeds"]
    ]


def point_validations(wildcards):
    """Input function of select_setting: every point's validation.json of the experiment."""
    return tuning_files(TUNE_POINT, wildcards.experiment)


def selection_of(wildcards):
    """Input function: the experiment's selection file when it is tuned, else nothing (an
    untuned experiment's jobs keep the inputs they had)."""
    if wildcards.experiment in GRIDS:
        return SELECTION.format(experiment=wildcards.experiment)
    return []


def untrained_selection(wildcards):
    """The selection file for the untrained control, when a tuned setting shapes the
    untrained network (UNTRAINED_KEYS)."""
    tuned = RUNS[wildcards.experiment].get("tuned")
    if tuned and set(tuned["settings"]) & set(UNTRAINED_KEYS):
        return tuned["selection"]
    return []


def point_params(wildcards):
    """The settings of one grid point and its tuned settings' values."""
    points = GRIDS.get(wildcards.experiment, {})
    if wildcards.point not in points:
        raise WorkflowError(
            f"{wildcards.experiment}: no grid point {wildcards.point!r}; its points are: "
            f"{', '.join(points) or 'none (the experiment has no tune grid)'}."
        )
    grid = RUNS[wildcards.experiment]["tuned"]["grid"]
    return {
        "settings": training_config(points[wildcards.point]),
        "values": grid_points(grid)[wildcards.point],
    }


def all_experiment_settings():
    return {e: training_config(RUNS[e]) for e in EXPERIMENTS}


def all_checkpoint_files(pattern, seeds=None):
    """`pattern` for every task of every selected experiment and seed (or `seeds`)."""
    return [
        pattern.format(experiment=e, seed=s, task=t)
        for e in EXPERIMENTS
        for s in (SEEDS if seeds is None else seeds)
        for t in run_tasks(e)
    ]


def analysis_on(wildcards):
    """Whether this run's seed gets the per-batch instruments and per-checkpoint analysis."""
    return int(wildcards.seed) in ANALYSIS_SEEDS


_DEVICE_CHECKED = []


def device_param(wildcards):
    """The `device` param; checked once when the DAG is built (before any job): only then does
    Snakemake know whether jobs run here (a cluster's submit host need not have the GPU that
    its nodes have)."""
    if not _DEVICE_CHECKED and workflow.local_exec and not workflow.dryrun:
        try:
            check_device(config)
        except ConfigError as error:
            raise WorkflowError(f"Invalid configuration: {error}") from None
        _DEVICE_CHECKED.append(True)
    return config["device"]


def training_params(wildcards):
    return training_config(RUNS[wildcards.experiment])


def run_params(wildcards):
    return RUNS[wildcards.experiment]


# What the untrained network and its measurement depend on: editing a training setting (lr,
# epochs, a method option) does not rerun the control.
UNTRAINED_KEYS = (
    "name",
    "tasks",
    "hidden",
    "norm",
    "dropout",
    "probe_unseen",
    "method",
    "ogd",
    "scenario",
    "scenario_tasks",
)


def untrained_params(wildcards):
    run = RUNS[wildcards.experiment]
    params = {k: run[k] for k in UNTRAINED_KEYS if k in run}
    if untrained_selection(wildcards):  # a tuned setting shapes the untrained network
        params["tuned"] = run["tuned"]
    return params


# ---- cluster jobs (profiles/slurm) ----
# One experiment's work is one cluster job: its seeds' training, evaluation, analysis and
# figure jobs. The dataset, the code digests and the aggregates over experiments stay out of
# every group: grouping follows dependencies, so any of them would join all runs into one job.
RUN_GROUP = "run_{experiment}"
# Where a training job in a cluster job keeps hard links of its outputs (clexp.kept).
TRAIN_KEPT = "results/kept/train_task/{experiment}/seed{seed}/task{task}"
# Connected components of one group name merged into one group job: "all of them". The seeds
# of an experiment share nothing inside the group (only the dataset and code digests), so each
# seed's chain (and its untrained control) is a component of its own.
_EVERY_COMPONENT = 1_000_000


def submits_jobs():
    """Whether this Snakemake submits its jobs to a cluster (or plans to, in a dry run of
    such a profile: `--jobs` then counts cluster jobs), rather than running them here.
    Known once the DAG is built, not while the Snakefile is read."""
    return workflow.non_local_exec or workflow.resource_settings.nodes is not None


def run_group(wildcards):
    """`group:` of every per-run job: its experiment's group (RUN_GROUP) on a cluster, none
    elsewhere (a local run ignores groups anyway; so does a local dry run, which then lists
    jobs as before).

    It also merges the group's connected components (the seeds) into one group job. This is
    set here rather than in the profile's `group-components`, because Snakemake does not pass
    that setting to the Snakemake that runs the group on its node, which would otherwise run
    the seeds one after the other."""
    if not submits_jobs():
        return None
    group = RUN_GROUP.format(experiment=wildcards.experiment)
    settings = workflow.group_settings
    if group not in settings.group_components:  # a profile's own setting wins
        settings.group_components = {**settings.group_components, group: _EVERY_COMPONENT}
    return group


def group_runs(rules):
    """Give every per-run rule (an {experiment} wildcard in its outputs), local ones aside,
    the group of its experiment (`run_group`), so that a new per-run rule joins it by itself."""
    for each in rules:
        # (workflow._localrules: the names of `localrule: True` rules, which stay local.)
        if "experiment" in each.wildcard_names and each.name not in workflow._localrules:
            each.group = run_group


def cluster_job_attempt():
    """Which submission of its cluster job this Snakemake runs (1: the first), from the
    `--attempt` Snakemake gives the job's Snakemake on the node (read from the command line for
    the same reason as in `runs_group_members`)."""
    try:
        return int(sys.argv[sys.argv.index("--attempt") + 1])
    except (ValueError, IndexError):
        return 1


def runs_group_members():
    """Whether this Snakemake runs the members of a group job on a cluster node: a job's
    Snakemake (remote mode) with the local executor (no `--jobs`), given the group's id. (Read
    from its command line: Snakemake sets its group settings only after the Snakefile.)"""
    return (
        workflow.remote_exec
        and workflow.resource_settings.nodes is None
        and "--local-groupid" in sys.argv
    )
