"""The pieces of the project's HTML pages (the report, a sweep's summary): one style, tables,
pictures embedded at their own size. Pages built from them fetch nothing and run no script.
"""

import base64
import html
from pathlib import Path

from PIL import Image

from pipeline.pictures.canvas import description_of

MIME_TYPES = {".png": "image/png", ".gif": "image/gif"}
STYLE = """
body { font-family: sans-serif; margin: 2rem auto; padding: 0 1rem; max-width: 82rem; color: #222; }
p, ul { max-width: 52rem; line-height: 1.45; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.7rem; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
section { margin-top: 3rem; border-top: 2px solid #ccc; }
figure { margin: 1.5rem 0; overflow-x: auto; }
figcaption { margin-bottom: 0.4rem; font-size: 0.95rem; }
img { max-width: none; display: block; }
nav ul { columns: 2; }
object { width: 100%; border: 1px solid #ddd; }
"""


def page_html(title: str, body: list[str]) -> str:
    """A whole page: `title` as its title and first heading, then the `body` parts."""
    head = f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
    parts = ["<!DOCTYPE html>", head, f"<style>{STYLE}</style></head><body>"]
    parts += [f"<h1>{html.escape(title)}</h1>", *body, "</body></html>"]
    return "\n".join(parts) + "\n"


def figure_html(picture: Path, caption: str, anchor: str) -> str:
    """A picture embedded at its own size (1:1), its description as alt text, and a caption;
    `anchor` is its id in the page (never a path: the page's bytes must not depend on one)."""
    with Image.open(picture) as image:
        width, height = image.size
    data = base64.b64encode(picture.read_bytes()).decode("ascii")
    return (
        f'<figure id="{html.escape(anchor)}">'
        f"<figcaption>{html.escape(caption)}</figcaption>"
        f'<img alt="{html.escape(description_of(picture))}" width="{width}" height="{height}" '
        f'src="data:{MIME_TYPES[picture.suffix]};base64,{data}"></figure>'
    )


def table_html(
    columns: tuple[str, ...],
    rows: list[tuple[str, ...]],
    numeric: set[str],
    linked: str | None = None,
) -> str:
    """A table; cells of the `numeric` columns right-aligned, and each cell of the `linked`
    column a link to the part of the page whose id is its text."""

    def cell(column: str, text: str) -> str:
        content = html.escape(text)
        if column == linked:
            content = f'<a href="#{content}">{content}</a>'
        kind = ' class="number"' if column in numeric else ""
        return f"<td{kind}>{content}</td>"

    header = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "".join(
        "<tr>" + "".join(cell(*pair) for pair in zip(columns, row, strict=True)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def contents_html(entries: list[tuple[str, str]]) -> str:
    """A table of contents: one link per (id, heading) of the page."""
    items = "".join(
        f'<li><a href="#{html.escape(anchor)}">{html.escape(heading)}</a></li>'
        for anchor, heading in entries
    )
    return f'<nav id="contents"><h2>Contents</h2><ul>{items}</ul></nav>'
