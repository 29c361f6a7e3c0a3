"""The report as a reader sees it: rendered by headless Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.slow

SECTIONS = ("Bounds", "Normalisation", "Representation strength", "Summary")
CHECK_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const headings = Array.from(document.querySelectorAll("h2")).map(h => h.textContent);
  document.body.setAttribute("data-check", JSON.stringify({images: images.length, broken,
                                                           headings}));
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
                          "--dump-dom", checked.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'data-check="([^"]*)"', result.stdout)
    assert found, "the check script did not run"
    check = json.loads(html.unescape(found.group(1)))
    assert check["images"] == page.count("<img ") > 0
    assert check["broken"] == 0
    for section in SECTIONS:
        assert section in check["headings"]

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
        figures = [n for n in bundle.namelist() if n.endswith(".png")]
    runs, checkpoints, study = 3, 11, 3
    assert len(figures) >= 6 * runs + 7 * checkpoints + study
