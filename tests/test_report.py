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
  const rows = table ? Array.from(table.querySelectorAll("tr")).slice(1) : [];
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
        assert link["verdict"] in ("holds", "does not hold")
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
    runs, multi_task_runs, checkpoints, study, comparisons = 3, 2, 11, 3, 27
    assert len(figures) >= (runs + 5 * multi_task_runs + 7 * checkpoints + study
                            + comparisons)
    # the report's filters: categories and labels
    for text in ("Comparisons", "Checkpoints", "Runs", "normalisation", "experiment",
                 "seed", "task", "figure"):
        assert text in index, text
