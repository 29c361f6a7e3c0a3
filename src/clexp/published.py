"""Measured accuracy beside a paper's published numbers (no torch).

A run may name a table of published results (`published_results` in the config, e.g.
profiles/vdv2019/published.csv). Its columns:

- `method`: a key of `METHOD_NAMES` (the reference method, as `clexp.study.method_key` reads
  it from an experiment's settings);
- `scenario`: `class`, `task` or `domain`;
- `mean`, `sd`: the published ACC and its spread, in percent as printed (empty where the
  number was not found: the report then says "not found");
- `source`: where the number was read (paper, version, table, row), or where it was looked
  for in vain.

`published_comparison` puts each published row beside the run's own: ACC (`avg_acc` of
summary.csv, the mean accuracy over the tasks after the last one, in the run's scenario) as
mean and sample sd over seeds, in percent, and the difference measured - published in
percentage points.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from clexp.errors import ConfigError
from clexp.study import method_key

METHOD_NAMES = {
    "none": "None (lower bound)",
    "joint": "Joint (upper bound)",
    "ewc": "EWC",
    "online_ewc": "Online EWC",
    "si": "SI",
    "lwf": "LwF",
    "er": "ER",
    "agem": "A-GEM",
}
SCENARIOS = ("class", "task", "domain")
PUBLISHED_COLUMNS = ["method", "scenario", "mean", "sd", "source"]
COMPARISON_COLUMNS = ["method", "scenario", "experiment", "n", "measured_mean", "measured_sd",
                      "published_mean", "published_sd", "difference", "source"]


def read_published(path: str | Path) -> pd.DataFrame:
    """The published table at `path`, checked: its columns, methods, scenarios and numbers
    (finite, or empty). Raises ConfigError naming the file, the row and what is wrong."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in PUBLISHED_COLUMNS if c not in table.columns]
    if missing:
        raise ConfigError(f"{path}: column(s) {', '.join(missing)} missing; a published "
                          f"table has the columns {', '.join(PUBLISHED_COLUMNS)}.")
    seen = set()
    for line, row in enumerate(table.itertuples(index=False), start=2):
        where = f"{path} line {line}"
        if row.method not in METHOD_NAMES:
            raise ConfigError(f"{where}: unknown method {row.method!r}; allowed: "
                              f"{', '.join(METHOD_NAMES)}.")
        if row.scenario not in SCENARIOS:
            raise ConfigError(f"{where}: unknown scenario {row.scenario!r}; allowed: "
                              f"{', '.join(SCENARIOS)}.")
        if (row.method, row.scenario) in seen:
            raise ConfigError(f"{where}: {row.method} in {row.scenario}-IL is listed twice.")
        seen.add((row.method, row.scenario))
        for column in ("mean", "sd"):
            text = getattr(row, column).strip()
            try:
                value = float(text) if text else 0.0
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise ConfigError(f"{where}: {column} {text!r} is not a number (leave it "
                                  "empty where the number was not found).")
        if not row.source.strip():
            raise ConfigError(f"{where}: source is empty; say where the number was read, "
                              "or where it was looked for.")
    table = table[PUBLISHED_COLUMNS].copy()
    for column in ("mean", "sd"):
        table[column] = pd.to_numeric(table[column].str.strip().replace("", math.nan))
    return table


def measured_cells(summary: pd.DataFrame, settings: dict[str, dict]) -> dict[tuple, dict]:
    """(method key, scenario) -> the run's experiment and its ACC over seeds, in percent
    (mean, sample sd, n). Experiments that train no reference method are left out; of two
    for one cell, the first in config order is kept."""
    cells: dict[tuple, dict] = {}
    for experiment, s in settings.items():
        method = method_key(s)
        if method is None:
            continue
        values = 100 * summary.loc[summary["experiment"] == experiment, "avg_acc"].dropna()
        cells.setdefault((method, s.get("scenario", "class")), {
            "experiment": experiment, "n": int(len(values)),
            "mean": float(values.mean()) if len(values) else math.nan,
            "sd": float(values.std()) if len(values) > 1 else math.nan})
    return cells


def published_comparison(summary: pd.DataFrame, settings: dict[str, dict],
                         published: pd.DataFrame) -> pd.DataFrame:
    """One row per method and scenario of the published table or of the run (published
    rows first, in their order): the experiment, n, measured mean and sd over seeds, the
    published mean and sd, the difference measured - published (percentage points; empty
    where either is missing) and the published number's source."""
    cells = measured_cells(summary, settings)
    rows = []
    keys = [(r.method, r.scenario) for r in published.itertuples(index=False)]
    keys += [key for key in cells if key not in keys]
    sources = published.set_index(["method", "scenario"])
    for method, scenario in keys:
        cell = cells.get((method, scenario), {})
        paper = (sources.loc[(method, scenario)] if (method, scenario) in sources.index
                 else None)
        published_mean = math.nan if paper is None else float(paper["mean"])
        measured = cell.get("mean", math.nan)
        rows.append({
            "method": method, "scenario": scenario, "experiment": cell.get("experiment", ""),
            "n": cell.get("n", 0), "measured_mean": measured,
            "measured_sd": cell.get("sd", math.nan), "published_mean": published_mean,
            "published_sd": math.nan if paper is None else float(paper["sd"]),
            "difference": measured - published_mean,
            "source": "" if paper is None else paper["source"],
        })
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def comparison_rows(table: pd.DataFrame) -> list[dict]:
    """The comparison table as rows of the report's template: per method (in METHOD_NAMES'
    order) one cell per scenario with the numbers as text ("not found" where the published
    number is missing, "not run" where the run has no experiment)."""

    def number(value, digits=2):
        return None if pd.isna(value) else f"{value:.{digits}f}"

    def with_spread(mean, sd):  # "mean ± sd", "mean" without a spread, None without a mean
        if number(mean) is None:
            return None
        return number(mean) + (f" ± {number(sd)}" if number(sd) is not None else "")

    rows = []
    for method in [m for m in METHOD_NAMES if m in set(table["method"])]:
        mine = table[table["method"] == method].set_index("scenario")
        cells = {}
        for scenario in SCENARIOS:
            if scenario not in mine.index:
                cells[scenario] = None
                continue
            row = mine.loc[scenario]
            measured = with_spread(row["measured_mean"], row["measured_sd"])
            published = with_spread(row["published_mean"], row["published_sd"])
            difference = number(row["difference"])
            cells[scenario] = {
                "experiment": row["experiment"], "n": int(row["n"]),
                "measured": measured or "not run", "published": published or "not found",
                "difference": ("–" if difference is None
                               else ("+" if row["difference"] > 0 else "") + difference),
                "source": row["source"],
            }
        rows.append({"method": METHOD_NAMES[method], "cells": cells})
    return rows
