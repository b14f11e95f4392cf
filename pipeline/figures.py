"""Figures that come out byte for byte the same: one style, hand layout, no metadata.

Every picture of the project is drawn through here: on its own Agg canvas (no pyplot
state), under matplotlib's defaults plus STYLE whatever the user's rc file says, laid
out in inches, and saved without timestamps or version strings, so that a rerun from
the same numbers gives the same bytes and DVC sees no change.
"""

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from pipeline.files import atomic_output

DPI = 100
TITLE_SIZE = 11
#: Every rcParam these figures rely on, set over matplotlib's defaults (not a user's rc file).
STYLE = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "mathtext.fontset": "dejavusans",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": TITLE_SIZE,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "axes.facecolor": "white",
}


@contextmanager
def style() -> Iterator[None]:
    """matplotlib's defaults plus STYLE, whatever the user's rc file says; restored after."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(STYLE)
        yield


def panel_figure(
    title: str,
    shape: tuple[int, int],
    panel: tuple[float, float],
    *,
    left: float = 0.8,
    right: float = 0.3,
    bottom: float = 0.6,
    gaps: tuple[float, float] = (0.8, 0.8),
    heads: float = 0.3,
    title_size: float = TITLE_SIZE,
    sharey: bool = False,
) -> tuple[Figure, np.ndarray]:
    """A figure of rows x columns panels of `panel` (width, height), with `title` wrapped above
    and `heads` for the panels' own titles; sizes in inches. The panels: (rows, columns).

    On its own Agg canvas (no pyplot); laid out by hand, since a layout engine would measure
    every text again at each draw.
    """
    rows, columns = shape
    width = left + columns * panel[0] + (columns - 1) * gaps[0] + right
    title = wrap(title, width, title_size)
    top = 0.25 + (title.count("\n") + 1) * title_size * 1.3 / 72 + heads
    height = top + rows * panel[1] + (rows - 1) * gaps[1] + bottom
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=gaps[0] / panel[0],
        hspace=gaps[1] / panel[1],
    )
    figure.suptitle(title, fontsize=title_size)
    return figure, figure.subplots(rows, columns, squeeze=False, sharey=sharey)


def wrap(text: str, width: float, fontsize: float) -> str:
    """`text` with each line re-wrapped to fit `width` inches at `fontsize` points.

    Lines break at spaces, never inside $mathtext$ (whose spaces are protected meanwhile).
    """
    columns = int(width * 72 / (0.55 * fontsize))  # DejaVu Sans: about 0.55 em a character
    parts = text.split("$")
    protected = "$".join(
        part.replace(" ", "\xa0") if index % 2 else part for index, part in enumerate(parts)
    )
    lines = [textwrap.fill(line, columns) for line in protected.split("\n")]
    return "\n".join(lines).replace("\xa0", " ")


def save_png(figure: Figure, path: Path) -> None:
    """Save `figure` as a PNG at `path`, atomically.

    Without a Software entry the PNG holds no version string: same figure, same bytes.
    """
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI, metadata={"Software": None})


def save_pngs(figures: dict[str, Figure], directory: Path) -> list[Path]:
    """Save each figure under its file name in `directory`; their paths."""
    paths = []
    for file_name, figure in figures.items():
        paths.append(directory / file_name)
        save_png(figure, paths[-1])
    return paths


def save_gif(frames: Iterator[tuple[Image.Image, int]], path: Path) -> None:
    """Write (frame, milliseconds) pairs as a looping GIF."""
    images, durations = zip(*frames, strict=True)
    with atomic_output(path) as temporary:
        images[0].save(
            temporary,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=list(durations),
            loop=0,
            optimize=False,
            disposal=1,
        )


def gif_frame(canvas: FigureCanvasAgg) -> Image.Image:
    """What the canvas holds now, in a GIF palette of its own.

    Fast octree without dithering: quick, and nothing random in it.
    """
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    return Image.fromarray(rgb).quantize(
        colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
    )
