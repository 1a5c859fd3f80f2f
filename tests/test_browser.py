"""The HTML reports in a real headless browser (Debian's chromium): they open offline, the tables are
there and every plot decodes as an image.

`make setup` installs chromium when it is missing and the user is root. Set POLICY_NER_SKIP_BROWSER=1
to skip these tests on a machine without it; otherwise a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from policy_ner.cli import main

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("POLICY_NER_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--virtual-time-budget=5000",
]
PROBE = """<script>window.addEventListener("load", function () {
  document.querySelectorAll("img").forEach(function (img) {
    img.setAttribute("data-natural-width", img.naturalWidth);
    img.setAttribute("data-natural-height", img.naturalHeight);
  });
  document.body.setAttribute("data-loaded", "yes");
});</script>"""
"""Injected into a copy of the report: after the page has loaded, records each image's decoded size."""


def find_chromium() -> str:
    """The browser, or a test failure saying how to get it (a skip only when asked for)."""
    if os.environ.get("POLICY_NER_SKIP_BROWSER") == "1":
        pytest.skip("POLICY_NER_SKIP_BROWSER=1")
    found = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if not found:
        pytest.fail(
            f"no chromium at {CHROMIUM} or on PATH: the HTML reports must be checked in a real browser. "
            "Install it with `make browser` (as root: apt-get install chromium), or set "
            "POLICY_NER_SKIP_BROWSER=1 to skip these tests",
            pytrace=False,
        )
    return found


def run_chromium(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )


class DomSummary(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: dict[str, int] = {}
        self.images: list[dict[str, str]] = []
        self.body: dict[str, str] = {}
        self._table = None

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._table = attrs.get("id", "")
            self.tables[self._table] = 0
        elif tag == "tr" and self._table is not None:
            self.tables[self._table] += 1
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "body":
            self.body = attrs

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None


def check_in_browser(chromium: str, report: Path, tmp_path: Path, tables: list[str], images: int) -> None:
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = run_chromium(chromium, tmp_path, "--dump-dom", probe.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = DomSummary()
    dom.feed(done.stdout)
    assert dom.body.get("data-loaded") == "yes", f"the page did not finish loading:\n{done.stdout[:500]}"
    for table in tables:
        assert dom.tables.get(table, 0) >= 2, f"table {table} missing or empty; tables seen: {dom.tables}"
    assert len(dom.images) == images
    for image in dom.images:
        assert image["src"].startswith("data:image/png;base64,")
        width, height = int(image["data-natural-width"]), int(image["data-natural-height"])
        assert width > 200 and height > 200, f"image {image.get('id')} did not decode ({width}x{height})"

    shot = tmp_path / "shot.png"
    done = run_chromium(chromium, tmp_path, "--window-size=1200,2400", f"--screenshot={shot}", report.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as picture:
        assert picture.size == (1200, 2400)
        colours = picture.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 100, "the screenshot is (nearly) blank"


def test_evaluation_report_opens_with_tables_and_plots(tiny_report, tmp_path):
    check_in_browser(
        find_chromium(),
        tiny_report / "report.html",
        tmp_path,
        [
            "strict-scores",
            "partial-scores",
            "partial-by-label",
            "error-types",
            "confusion",
            "errors-POLICY_TARGET",
            "model-card-facts",
            "model-card-data",
        ],
        images=2,
    )


def test_comparison_report_opens_with_tables_and_plots(tiny_predictions, tiny_project, tmp_path):
    chromium = find_chromium()
    records = [json.loads(line) for line in tiny_predictions.read_text(encoding="utf-8").splitlines()]
    fewer = tmp_path / "fewer.jsonl"
    fewer.write_text(
        "".join(json.dumps({**r, "entities": r["entities"][::2]}, ensure_ascii=False) + "\n" for r in records),
        encoding="utf-8",
    )
    output = tmp_path / "compare"
    assert (
        main(
            [
                "compare",
                str(fewer),
                str(tiny_predictions),
                "--on",
                str(tiny_project / "annotations" / "tiny.json"),
                "--samples",
                "100",
                "--output",
                str(output),
            ]
        )
        == 0
    )
    check_in_browser(
        chromium,
        output / "report.html",
        tmp_path,
        ["systems", "side-by-side", "delta-tiny-v1", "disagreeing-documents", "disagreeing-entities"],
        images=2,
    )
