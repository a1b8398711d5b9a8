"""Open the `dvc plots show` page in headless Chromium, check what a user sees, and screenshot it.

    python tools/plots_page.py [--screenshot docs/plots_page.png]     # after `dvc repro`, from the repository root

Checks, each failing with a one-line reason: every interactive chart rendered (vega-embed drew a canvas or
an svg for it, with no internet: the page inlines the chart library, `plots/offline_template.html`); every
level's training curves have at least two epochs; every static PNG the page lists loads. Needs Debian's
`chromium` (`apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise SystemExit("chromium not found: apt-get install chromium")


def render_page(out: Path) -> Path:
    """`dvc plots show -o out` (the configured offline template); the page's path."""
    result = subprocess.run(["dvc", "plots", "show", "-o", str(out)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"dvc plots show failed: {result.stderr.strip()[-500:]}")
    return out / "index.html"


def vega_specs(page: Path) -> list[dict]:
    """The vega-lite specs embedded in the page (``var spec = {...};``)."""
    return [json.loads(m) for m in re.findall(r"var spec = (\{.*?\});\s*vegaEmbed", page.read_text(), re.S)]


def check(page: Path, profile: Path) -> list[str]:
    """Problems with what the page shows (empty list: all good)."""
    problems = []
    text = page.read_text()
    if "cdn.jsdelivr.net" in text:
        problems.append("the page loads vega from a CDN: `.dvc/config` should name plots/offline_template.html")
    specs = vega_specs(page)
    curves = [s for s in specs if "per epoch" in json.dumps(s.get("title", ""))]
    if len(curves) < 2:
        problems.append(f"expected the validation macro-F1 and training loss charts, found {len(curves)}")
    for spec in curves:
        values = spec.get("data", {}).get("values", [])
        by_level: dict[str, set] = {}
        for row in values:
            by_level.setdefault(str(row.get("rev", "")) + str(row.get("filename", "")), set()).add(row.get("step"))
        for level, steps in by_level.items():
            if len(steps) < 2:
                problems.append(f"{spec.get('title')}: {level} has {len(steps)} epoch(s); a curve needs 2")
        if len(by_level) < 3:
            problems.append(f"{spec.get('title')}: {len(by_level)} level(s) drawn, expected 3")
    dom = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    drawn = len(re.findall(r"<canvas|<svg[^>]*class=\"marks\"", dom))
    if drawn < len(specs):
        problems.append(f"{len(specs)} interactive charts, {drawn} drawn: the chart library did not load")
    markup = re.sub(r"<script.*?</script>", "", text, flags=re.S)  # the inlined chart library holds img templates
    for src in re.findall(r'<img src="([^"]+)"', markup):
        path = (page.parent / src) if not src.startswith("data:") else None
        if path is not None and not path.exists():
            problems.append(f"image {src} is missing")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--screenshot", type=Path, help="write a PNG of the page here")
    parser.add_argument("--width", type=int, default=1500)
    parser.add_argument("--height", type=int, default=5200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        page = render_page(Path(work) / "dvc_plots")
        problems, charts = check(page, Path(work) / "profile"), len(vega_specs(page))
        if args.screenshot:
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={Path(work) / 'profile'}",
                            "--virtual-time-budget=15000", f"--window-size={args.width},{args.height}",
                            f"--screenshot={args.screenshot.resolve()}", page.as_uri()], capture_output=True, timeout=120)
            print(f"wrote {args.screenshot}")
    for problem in problems:
        print(f"plots page: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"plots page: {charts} interactive charts drawn offline; "
          "every level's curves have at least 2 epochs")


if __name__ == "__main__":
    main()
