"""The report as a reader sees it: rendered by headless Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.slow

SECTIONS = ("Findings", "Protocol", "Bounds", "Normalisation", "Representation strength",
            "Forward transfer", "Summary")
# Runs in the page once it has loaded: image decoding, headings, the findings table's place on
# the first screen (1400x900) and where each finding's figure link points.
CHECK_SCRIPT = """
<script>
window.addEventListener("load", () => {
  document.querySelectorAll("details").forEach(d => { d.open = true; });
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const headings = Array.from(document.querySelectorAll("h2")).map(h => h.textContent);
  document.querySelectorAll("details").forEach(d => { d.open = false; });
  window.scrollTo(0, 0);
  const table = document.getElementById("findings-table");
  // one group of rows per claim: its first row carries the verdict and the figure link
  const rows = table ? Array.from(table.querySelectorAll("tr")).slice(1)
    .filter(r => r.querySelector("td.verdict")) : [];
  const firstVerdict = table ? table.querySelector("td.verdict") : null;
  const links = rows.map(r => {
    const a = r.querySelector("a");
    const target = a ? document.getElementById(a.getAttribute("href").slice(1)) : null;
    return {verdict: r.querySelector("td.verdict").textContent, linked: !!a,
            target: target ? target.tagName : null,
            image: target ? !!target.querySelector("img") : false};
  });
  document.body.setAttribute("data-check", JSON.stringify({
    images: images.length, broken, headings, rows: rows.length, links,
    verdictTop: firstVerdict ? firstVerdict.getBoundingClientRect().bottom : null}));
});
</script>
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is not installed (Debian package 'chromium'); the report's "
                "rendering is not checked here")


def run_chromium(browser: str, profile, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-quic", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=180,
    )


def test_report_renders_with_every_section_and_no_broken_image(tiny_run, tmp_path):
    browser = chromium()
    page = (tiny_run / "results/report.html").read_text()
    checked = tmp_path / "report-checked.html"
    checked.write_text(page.replace("</body>", CHECK_SCRIPT + "</body>"))
    result = run_chromium(browser, tmp_path / "profile", "--virtual-time-budget=30000",
                          "--window-size=1400,900", "--dump-dom", checked.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'data-check="([^"]*)"', result.stdout)
    assert found, "the check script did not run"
    check = json.loads(html.unescape(found.group(1)))
    assert check["images"] == page.count("<img ") > 0
    assert check["broken"] == 0
    for section in SECTIONS:
        assert section in check["headings"]
    assert check["headings"][0] == "Findings"
    # the findings with their verdicts are on the first screen
    assert check["rows"] >= 5 and check["verdictTop"] is not None
    assert check["verdictTop"] < 900
    for link in check["links"]:
        # one seed: every claim that ran is untested
        assert link["verdict"] == "untested (n = 1)"
        assert link["linked"] and link["target"] == "FIGURE" and link["image"], link

    screenshot = tmp_path / "report.png"
    result = run_chromium(browser, tmp_path / "profile2", "--window-size=1280,3000",
                          f"--screenshot={screenshot}", (tiny_run / "results/report.html")
                          .as_uri())
    assert screenshot.exists() and screenshot.stat().st_size > 10_000, result.stderr[-2000:]


def test_snakemake_report_collects_every_annotated_figure(tiny_run, tmp_path):
    import zipfile

    from conftest import snakemake

    archive = tmp_path / "report.zip"
    result = snakemake(tiny_run, "--report", str(archive))
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(archive) as bundle:
        names = bundle.namelist()
        figures = [n for n in names if n.endswith(".png")]
        index = "".join(bundle.read(n).decode(errors="replace") for n in names
                        if n.endswith((".html", ".js")))
    runs, multi_task_runs, checkpoints, study, comparisons = 3, 2, 11, 3, 28
    assert len(figures) >= (runs + 5 * multi_task_runs + 7 * checkpoints + study
                            + comparisons)
    # the report's filters: categories and labels
    for text in ("Comparisons", "Checkpoints", "Runs", "normalisation", "experiment",
                 "seed", "task", "figure"):
        assert text in index, text


def test_the_page_stays_within_its_budget_as_the_study_grows(tiny_run, tmp_path):
    """The default config with the methods, the scenarios and three seeds (60 experiments),
    and the OGD-GTL profile's five more, drawn from the tiny run's real figures: the page
    stays under 20 MB and embeds every figure it lists."""
    import shutil as files_shutil

    import yaml

    from clexp.comparisons import comparison_groups, section_figures
    from clexp.report import MAX_REPORT_BYTES, StudyFiles, build_report

    from conftest import REPO

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    gtl = yaml.safe_load((REPO / "profiles" / "ogd_gtl" / "ogd_gtl.yaml").read_text())
    experiments = list(dict.fromkeys(list(config["experiments"]) + list(gtl["experiments"]) + [
        "seq_wd001", "ewc", "online_ewc", "si", "lwf", "er", "agem", "er_bn", "mine1", "mine2"]))
    tasks = {e: 1 if e.startswith("joint") else 5 for e in experiments}
    results = tiny_run / "results"
    comparisons = comparison_groups(experiments)
    figures = {s: section_figures(s) for s in comparisons}
    drawn = tmp_path / "comparisons"
    for section, names in figures.items():
        (drawn / section).mkdir(parents=True)
        for name in names:
            source = next(results.glob(f"study/comparisons/*/{name}.png"),
                          results / "study/comparisons/normalisation/accuracy.png")
            files_shutil.copy(source, drawn / section / f"{name}.png")
    seq = str(results / "seq/seed0")
    paths = {
        "summary": str(results / "summary.csv"),
        "by_experiment": str(results / "summary_by_experiment.csv"),
        "accuracy_matrix": f"{seq}/accuracy_matrix.csv",
        "probe_table": f"{seq}/probe_table.csv",
        "run_figures": {"learning_curves": f"{seq}/learning_curves.png"},
        "task_figures": {n: f"{seq}/{n}.png" for n in (
            "accuracy_matrix", "probe_progress", "sparsity", "eval_loss", "bias_stats")},
        "checkpoint_figures": {n: f"{seq}/task{{task}}/figures/{n}.png" for n in (
            "forgetting_curve", "relative_updates", "gradient_maps", "probability_profile",
            "latent_map", "hidden_features", "weight_histograms")},
        "study_tables": {n: str(results / f"study/{n}.csv") for n in (
            "l1_sweep", "weight_decay_sweep", "eval_loss_comparison", "forward_transfer",
            "representation", "scenarios")},
        "study_figures": {n: str(results / f"study/{n}.png") for n in (
            "l1_sweep", "weight_decay_sweep", "eval_loss_comparison")},
        "checkpoints": str(results / "study/checkpoints.csv"),
        "findings": str(results / "study/findings.csv"),
        "comparison_figure": str(drawn / "{section}/{figure}.png"),
        "report": str(results / "report.html"),
    }
    files = StudyFiles(experiments=experiments, seeds=[0, 1, 2], tasks=tasks, paths=paths,
                       comparisons=comparisons, comparison_figures=figures)
    page = build_report(files)
    detail = files.detail_count()
    single = sum(1 for e in experiments if tasks[e] == 1)
    multi = len(experiments) - single
    assert len(experiments) >= 40 and detail == len(experiments) + 5 * multi + 7 * (
        single + 5 * multi)
    assert page.count("data:image/webp;base64,") == detail
    shown = page.count("data:image/png;base64,")
    assert shown >= 6 * len(comparisons)
    assert len(page.encode()) <= MAX_REPORT_BYTES


def test_detail_figures_encoded_side_by_side_equal_those_encoded_one_by_one(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from clexp.report import ImageEncoder

    paths, generator = [], np.random.default_rng(0)
    for index in range(6):  # noisy scatter plots of growing size: they compress differently
        figure, axis = plt.subplots(figsize=(3 + index, 3))
        axis.scatter(*generator.normal(size=(2, 300 * (index + 1))), s=2)
        paths.append(tmp_path / f"figure{index}.png")
        figure.savefig(paths[-1], dpi=80)
        plt.close(figure)
    # 8 kB per figure: the larger ones need smaller steps
    budget = {"detail_count": 6, "max_bytes": 1_000_000 + 6 * 8000 * 4 // 3}
    one_by_one, side_by_side = ImageEncoder([], **budget), ImageEncoder([], **budget)
    side_by_side.encode_details(paths + paths[:2], threads=3)  # repeats are encoded once
    assert sum(side_by_side.steps.values()) == 6
    for path in paths:
        assert side_by_side.cache[str(path)] == one_by_one.uri(path, detail=True)
    assert side_by_side.steps == one_by_one.steps
    assert len(set(one_by_one.steps)) > 1  # the budget really forced smaller steps
