"""Figures that come out byte for byte the same and stay readable at 1:1.

Every picture of the project is drawn through here: on its own Agg canvas (no pyplot
state), under matplotlib's defaults plus STYLE whatever the user's rc file says, laid
out in inches, and saved without timestamps or version strings, so that a rerun from
the same numbers gives the same bytes and DVC sees no change. A figure becomes pixels only
through `drawn_image`, which refuses text under MIN_TEXT_PX; saving stores what the picture
shows in the file itself (its description: the report's alt text), so the words travel
with the pixels they describe.
"""

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image, PngImagePlugin

from pipeline.library.errors import InputError
from pipeline.library.files import atomic_output

DPI = 100
#: The smallest text a picture may hold, in pixels at 1:1 (font size in points * DPI / 72).
MIN_TEXT_PX = 10.0
#: mathtext draws sub- and superscripts at this fraction of the text's size.
SCRIPT_SHRINK = 0.7
TITLE_SIZE = 11
#: Text with mathtext sub- or superscripts, at a size that keeps its scripts >= MIN_TEXT_PX.
MATH_SIZE = 10.5
#: Every rcParam these figures rely on, set over matplotlib's defaults (not a user's rc file).
STYLE = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "mathtext.fontset": "dejavusans",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": MATH_SIZE,  # axis labels are often $h_0$, $h_1$
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 9,
    "figure.titlesize": TITLE_SIZE,
    "figure.dpi": DPI,
    "figure.facecolor": "white",
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
    top = 0.25 + text_lines_height(title, title_size) + heads
    height = top + rows * panel[1] + (rows - 1) * gaps[1] + bottom
    figure = new_figure(width, height)
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


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of width x height inches at DPI, on its own Agg canvas (no pyplot)."""
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def text_lines_height(text: str, fontsize: float) -> float:
    """The height in inches of `text`'s lines at `fontsize` points, line spacing included."""
    return (text.count("\n") + 1) * fontsize * 1.3 / 72


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


def text_height_px(text: Text, dpi: float) -> float:
    """How high `text`'s smallest characters are drawn, in pixels: its font size at `dpi`,
    shrunk once if it holds mathtext sub- or superscripts (none of ours nest them)."""
    pixels = text.get_fontsize() * dpi / 72
    maths = text.get_text().split("$")[1::2]  # the parts between pairs of $
    has_scripts = any("_" in part or "^" in part for part in maths)
    return pixels * SCRIPT_SHRINK if has_scripts else pixels


def check_text_size(figure: Figure) -> None:
    """Refuse a drawn figure with visible text under MIN_TEXT_PX at 1:1 (ValueError).

    Call after drawing: tick labels only exist then. Sizes are the figure's own, in points,
    at its DPI: the canvas's pixels, which are the file's.
    """
    for text in figure.findobj(Text):
        if text.get_visible() and text.get_text().strip():
            height = text_height_px(text, figure.dpi)
            if height < MIN_TEXT_PX:
                raise ValueError(
                    f"figure text {text.get_text()!r} would be {height:.1f} px high at 1:1; "
                    f"every text must be at least {MIN_TEXT_PX:g} px"
                )


def drawn_image(figure: Figure) -> Image.Image:
    """What `figure`'s canvas holds now (drawn, or blitted onto), as an RGB image at DPI.

    Refuses text under MIN_TEXT_PX first (see check_text_size): every picture passes here.
    """
    check_text_size(figure)
    return Image.fromarray(np.asarray(figure.canvas.buffer_rgba())[..., :3].copy())


def render(figure: Figure) -> Image.Image:
    """Draw `figure` and return it as an RGB image at DPI (see drawn_image)."""
    figure.canvas.draw()
    return drawn_image(figure)


def save_png(image: Image.Image, path: Path, description: str) -> None:
    """Save `image` as a PNG at `path`, atomically, with `description` (what it shows) in it.

    The PNG holds nothing else: no time, no version string, so the same pixels give the
    same bytes.
    """
    info = PngImagePlugin.PngInfo()
    info.add_itxt("Description", description)
    with atomic_output(path) as temporary:
        image.save(temporary, format="PNG", pnginfo=info)


def save_pngs(images: dict[str, tuple[Image.Image, str]], directory: Path) -> list[Path]:
    """Save each (image, description) under its file name in `directory`; their paths."""
    paths = []
    for file_name, (image, description) in images.items():
        paths.append(directory / file_name)
        save_png(image, paths[-1], description)
    return paths


def save_gif(frames: Iterator[tuple[Image.Image, int]], path: Path, description: str) -> None:
    """Write (frame, milliseconds) pairs as a looping GIF with `description` as its comment."""
    images, durations = zip(*frames, strict=True)
    with atomic_output(path) as temporary:
        images[0].save(
            temporary,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=list(durations),
            loop=0,
            optimize=True,  # a palette of the colours used: a quarter smaller
            disposal=1,
            comment=description.encode(),
        )


def gif_frame(figure: Figure) -> Image.Image:
    """What `figure`'s canvas holds now (see drawn_image), in a GIF palette of its own.

    Fast octree without dithering: quick, and nothing random in it.
    """
    return drawn_image(figure).quantize(
        colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
    )


def description_of(path: Path) -> str:
    """What a picture saved here shows: the description save_png or save_gif stored in it;
    InputError if it holds none."""
    with Image.open(path) as image:
        is_png = isinstance(image, PngImagePlugin.PngImageFile)
        description = image.text.get("Description") if is_png else image.info.get("comment")
    if not description:
        raise InputError(f"{path}: holds no description of what it shows (redraw it)")
    return description if is_png else description.decode()
