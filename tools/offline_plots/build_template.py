"""Build plots/offline_template.html: DVC's plot page with vega, vega-lite and vega-embed inlined, so that
`dvc plots show` renders its interactive charts with no internet (DVC's own page loads them from a CDN).

    npm pack vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2     # the versions dvc-render loads
    python tools/offline_plots/build_template.py vega-5.20.2.tgz vega-lite-5.2.0.tgz vega-embed-6.18.2.tgz

.dvc/config points `plots.html_template` at the result. The libraries are BSD-3-Clause; their licenses are
copied beside this script (LICENSE-vega*).
"""

import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE.parents[1] / "plots" / "offline_template.html"
BUILDS = {"vega": "package/build/vega.min.js", "vega-lite": "package/build/vega-lite.min.js",
          "vega-embed": "package/build/vega-embed.min.js"}
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot (offline)</title>
    {inline_scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def main(tarballs: list[str]) -> None:
    scripts = []
    for name, member in BUILDS.items():
        tarball = next(t for t in tarballs if Path(t).name.startswith(f"{name}-") and
                       Path(t).name[len(name) + 1].isdigit())
        with tarfile.open(tarball) as archive:
            code = archive.extractfile(member).read().decode("utf-8")
            (HERE / f"LICENSE-{name}").write_bytes(archive.extractfile("package/LICENSE").read())
        if "{plot_divs}" in code or "{refresh_tag}" in code:
            raise SystemExit(f"{tarball}: holds a DVC template placeholder; cannot inline it")
        scripts.append(f"<script>/* {Path(tarball).name} */\n{code}\n</script>")
    TARGET.write_text(PAGE.format(refresh_tag="{refresh_tag}", inline_scripts="\n".join(scripts)), encoding="utf-8")
    print(f"wrote {TARGET} ({TARGET.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main(sys.argv[1:])
