"""What keeps README.md and docs/ true: their links and anchors, their results tables against
the committed reports, their params reference against the schema and dvc.yaml, and their
runnable Python blocks. Each check returns what is wrong (empty: all true)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from helpers import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUNNABLE = "<!-- runnable -->"  # the line before a ```python block that must run as written

_FENCE = re.compile(r"^```.*?^```[^\n]*$", re.M | re.S)
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def prose(markdown: str) -> str:
    """The text outside code blocks and inline code (where links and headings are)."""
    return re.sub(r"`[^`\n]*`", "", _FENCE.sub("", markdown))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[*_`]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _FENCE.sub("", markdown), re.M):
        base, number = slug(heading), 0
        name = base
        while name in found:  # GitHub numbers repeated headings
            number += 1
            name = f"{base}-{number}"
        found.add(name)
    return found


def broken_links(pages: list[Path]) -> list[str]:
    """Every relative link that names no file, or an #anchor no heading of its page has."""
    broken = []
    for page in pages:
        for target in _LINK.findall(prose(page.read_text())):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{_shown(page)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
                broken.append(f"{_shown(page)}: {target} (no such heading)")
    return broken


def _shown(page: Path) -> str:
    return str(page.relative_to(REPO)) if page.is_relative_to(REPO) else str(page)


def table_rows(markdown: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the table whose first header cell is `first_header`, by header."""
    lines = markdown.splitlines()
    for number, line in enumerate(lines):
        cells = _cells(line)
        if cells and cells[0] == first_header:
            rows = []
            for row in lines[number + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(cells, _cells(row), strict=True)))
            return rows
    raise AssertionError(f"no table headed {first_header!r}")


def _cells(line: str) -> list[str]:
    if not line.startswith("|"):
        return []
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


# A results row's first cell -> (the report it comes from, where in it the figures are).
RESULT_SOURCES = {
    "the noisy input itself": ("reports/evaluate/metrics.json", "noisy_input"),
    "the noisy input itself (σ = 0.4)": ("reports/evaluate/metrics.json", "noisy_input"),  # noqa: RUF001
    "**the default autoencoder** (32-number code, 9 epochs)": (
        "reports/evaluate/metrics.json",
        "denoising",
    ),
    "**the default autoencoder** (noisy → clean)": ("reports/evaluate/metrics.json", "denoising"),
    "the article's network (1,568 numbers, 50 epochs, as the article trains it)": (
        "docs/results/article-network.json",
        "evaluate.denoising",
    ),
    "the article's network (`arch: seed`, trained as the article)": (
        "docs/results/article-network.json",
        "evaluate.denoising",
    ),
    "PCA, 32 components": ("reports/compare_pca/metrics.json", "pca.denoising"),
    "PCA, its best (64 components)": ("reports/compare_pca/pca.csv", "64.denoising"),
    "the default autoencoder fed clean input (reconstruction)": (
        "reports/evaluate/metrics.json",
        "reconstruction",
    ),
    "PCA, 32 components, clean input": ("reports/compare_pca/metrics.json", "pca.reconstruction"),
}
COLUMNS = {"PSNR": "psnr", "denoising PSNR": "psnr", "MSE": "mse", "SSIM": "ssim"}


def report_figures(report: str, where: str, root: Path = REPO) -> dict[str, float]:
    """{"psnr": ..., "mse": ..., ...} from a JSON report's dotted path, or a pca.csv row."""
    path = root / report
    if path.suffix == ".csv":
        size, task = where.split(".")
        with path.open() as table:
            (row,) = [r for r in csv.DictReader(table) if r["code_size"] == size]
        return {k.removeprefix(f"{task}_"): float(v) for k, v in row.items() if k.startswith(task)}
    found = json.loads(path.read_text())
    for key in where.split("."):
        found = found[key]
    return found


def result_mismatches(
    markdown: str, first_header: str, root: Path = REPO, page_folder: str = "."
) -> list[str]:
    """Each figure of the results table that is not its report's value as shown (rounded to
    the digits the table shows), and each row whose report is unknown or not linked (links are
    relative to the page's folder in the repository)."""
    wrong = []
    for row in table_rows(markdown, first_header):
        label, *_ = row.values()
        if label not in RESULT_SOURCES:
            wrong.append(f"{label}: no known report for this row")
            continue
        report, where = RESULT_SOURCES[label]
        target = re.fullmatch(r"\[[^]]*\]\(([^)#]*)\)", row["report"].strip())
        linked = target and os.path.normpath(os.path.join(page_folder, target[1]))
        if linked != report:
            wrong.append(f"{label}: links {row['report']}, not {report}")
        figures = report_figures(report, where, root)
        for column, key in COLUMNS.items():
            shown = row.get(column, "").strip("*").removesuffix(" dB").strip("*")
            if not shown:
                continue
            digits = len(shown.partition(".")[2])
            if f"{figures[key]:.{digits}f}" != shown:
                wrong.append(f"{label}: {column} {shown}, the report says {figures[key]}")
    return wrong


def runnable_blocks(markdown: str) -> list[str]:
    return re.findall(rf"^{re.escape(RUNNABLE)}\n```python\n(.*?)^```$", markdown, re.M | re.S)


def run_block(code: str, cwd: Path, env: dict[str, str] | None = None):
    """A runnable block run as written, with this environment's python, in `cwd`."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


# A measured figure: a time, a size, a rate, a score in dB, a share, a speed ratio.
MEASURED = re.compile(
    r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:\u2013\d[\d,]*(?:\.\d+)?)?\s?"  # 42\u201352 s: a range
    r"(?:ms|s|min|minutes|hours|dB|%|MB|GB|MiB|GiB|images/s|img/s|digits/s|requests/s)(?![\w/])"
    r"|(?<![\w.])\d+(?:\.\d+)?\u00d7(?!\s?\d)"  # 1.9\u00d7, not 28 \u00d7 28
)
# A link to a pipeline report or a benchmark's JSON (not to any JSON: an example request is none)
SOURCE = re.compile(r"\]\((?:\.\./)?(?:docs/)?(?:reports|results)/[^)\s]*\.(?:json|csv)\)")
# Figures in the docs that are not measurements: settings, bounds and arithmetic.
NOT_MEASURED = {
    ("metrics.md", "80 dB"): "what the PSNR formula's 1e-8 gives a perfect image",
    ("metrics.md", "99%"): "1 - anomaly.false_alarm_rate",
    ("metrics.md", "1 %"): "anomaly.false_alarm_rate's default",
    ("pipeline.md", "52 MB"): "the default's uint8 splits on the device, by arithmetic",
    ("pipeline.md", "94 MB"): "the same with fresh_noise: false",
    ("pictures.md", "0.3 dB"): "a bound the end-to-end test asserts",
    ("pictures.md", "2 dB"): "a bound the end-to-end test asserts",
    ("reliability.md", "15 s"): "tracking.store.REACH_SECONDS",
    ("tracking.md", "15 s"): "tracking.store.REACH_SECONDS",
    ("tracking.md", "16 MiB"): "serve_app.MAX_BODY",
    ("tracking.md", "64 MiB"): "serve_app.DRAIN",
}


def unsourced_figures(pages: list[Path]) -> list[str]:
    """Each measured figure in prose or a table whose block (a paragraph, a list, a table)
    links no report or JSON it comes from, nor does the paragraph just before it: where the
    figure was measured and by what, it must say, or the figure goes. Inline code, code blocks
    and NOT_MEASURED figures are not read."""
    wrong = []
    for page in pages:
        before = ""
        for block in re.split(r"\n\s*\n", _FENCE.sub("", page.read_text())):
            if block.startswith("#"):
                before = ""  # a new section: the paragraph before belongs to another
            figures = MEASURED.findall(re.sub(r"`[^`\n]*`", "", block))
            figures = [f for f in figures if (page.name, f) not in NOT_MEASURED]
            if figures and not SOURCE.search(block) and not SOURCE.search(before):
                wrong.append(f"{_shown(page)}: {', '.join(figures)} ({block[:60]!r}...)")
            if not block.startswith("|"):
                before = block
    return wrong
