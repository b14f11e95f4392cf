"""Write .dvc/plots/page.html: DVC's page template with Vega, Vega-Lite and Vega-Embed inline.

DVC's own page loads the three libraries from a CDN, so offline its charts take no space. This
script installs the pinned npm packages into a temporary folder, checks them against the
integrity npm recorded for the pins, puts their browser builds into page.in.html, and writes
the licences of everything those builds contain into licenses/. Run it (npm needed) after
changing a pin: `python .dvc/plots/build_page.py`.
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name: (version, npm integrity, browser build). Vega 5 and Vega-Lite 5: DVC's templates
#: are Vega-Lite v5 specs; Vega-Embed 6 is the line built for them.
PACKAGES = {
    "vega": (
        "5.33.1",
        "sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw==",
        "build/vega.min.js",
    ),
    "vega-lite": (
        "5.23.0",
        "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==",
        "build/vega-lite.min.js",
    ),
    "vega-embed": (
        "6.29.0",
        "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==",
        "build/vega-embed.min.js",
    ),
}
MARKER = "<!-- vendored scripts -->"
#: What DVC replaces in the template; a library holding one of these would be corrupted.
DVC_PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")
#: Vega's npm package has no licence file: licenses/vega.LICENSE is the vega repository's at
#: tag v5.33.1, and also covers the other packages of that repository the builds contain.
VEGA_REPOSITORY_PACKAGE = re.compile(r"vega(-[a-z]+)*")
#: In a source map: a package from node_modules, or a sibling in the vega repository.
SOURCE_PACKAGE = re.compile(r"^(?:.*node_modules/|\.\./\.\./)((?:@[^/]+/)?[^/.][^/]*)/")


def install(folder: Path) -> Path:
    """npm-install the pinned packages into `folder`; their node_modules, integrity checked."""
    pins = [f"{name}@{version}" for name, (version, _, _) in PACKAGES.items()]
    subprocess.run(
        [
            "npm",
            "install",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--prefix",
            folder,
            *pins,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    lock = json.loads((folder / "node_modules" / ".package-lock.json").read_text())["packages"]
    for name, (version, integrity, _) in PACKAGES.items():
        entry = lock[f"node_modules/{name}"]
        if (entry["version"], entry["integrity"]) != (version, integrity):
            sys.exit(f"{name}: npm gave {entry['version']} {entry['integrity']}, pinned {version}")
    return folder / "node_modules"


def inline_script(name: str, source: str) -> str:
    """A <script> element holding `source`, without its source-map comment."""
    source = re.sub(r"\n?//# sourceMappingURL=\S+\s*$", "", source)
    if "</script" in source.lower() or any(p in source for p in DVC_PLACEHOLDERS):
        sys.exit(f"{name}: its build cannot be inlined (holds </script or a DVC placeholder)")
    version = PACKAGES[name][0]
    return f"<script>/* {name} {version}, BSD-3-Clause */\n{source}\n</script>"


def bundled_packages(node_modules: Path, build: Path) -> set[str]:
    """The installed npm packages whose code a build contains, read from its source map."""
    sources = json.loads(build.with_name(build.name + ".map").read_text())["sources"]
    named = {match.group(1) for source in sources if (match := SOURCE_PACKAGE.search(source))}
    return {name for name in named if (node_modules / name / "package.json").is_file()}


def licence_file(package: Path) -> Path | None:
    """The package's licence text, if its npm package ships one."""
    return next(iter(sorted(package.glob("LICEN[CS]E*"))), None)


def third_party_notices(node_modules: Path, names: set[str]) -> str:
    """Markdown: the bundled packages with their versions, grouped under each licence text."""
    vega_licence = (HERE / "licenses" / "vega.LICENSE").read_text()
    packages_of: dict[str, list[str]] = {}
    for name in sorted(names):
        package = node_modules / name
        meta = json.loads((package / "package.json").read_text())
        text = licence_file(package)
        if text is None and not VEGA_REPOSITORY_PACKAGE.fullmatch(name):
            sys.exit(f"{name}: bundled, but its npm package has no licence file")
        licence = vega_licence if text is None else text.read_text()
        packages_of.setdefault(licence.strip(), []).append(
            f"{name} {meta['version']} ({meta.get('license', 'no licence field')})"
        )
    lines = [
        "# Code from other packages inside the vendored builds",
        "",
        "Written by build_page.py from the builds' source maps; versions are those npm resolves",
        "for the ranges the pinned packages declare. Packages of the vega repository without a",
        "licence file of their own on npm are listed under vega.LICENSE's text.",
    ]
    for licence, packages in packages_of.items():
        lines += ["", f"## {', '.join(packages)}", "", "```", licence, "```"]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    """Write `text` under a temporary name, then rename: never a half-written file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        node_modules = install(Path(folder))
        scripts, bundled = [], set()
        for name, (_, _, build) in PACKAGES.items():
            scripts.append(inline_script(name, (node_modules / name / build).read_text()))
            bundled |= bundled_packages(node_modules, node_modules / name / build)
        for name in PACKAGES:
            text = licence_file(node_modules / name)
            if text is not None:
                write(HERE / "licenses" / f"{name}.LICENSE", text.read_text())
            elif not (HERE / "licenses" / f"{name}.LICENSE").is_file():
                sys.exit(f"{name}: no licence file in its npm package nor in licenses/")
        write(HERE / "licenses" / "THIRD-PARTY.md", third_party_notices(node_modules, bundled))
    template = (HERE / "page.in.html").read_text()
    write(HERE / "page.html", template.replace(MARKER, "\n".join(scripts)))


if __name__ == "__main__":
    main()
