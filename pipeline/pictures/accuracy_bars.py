"""The report's chart: test accuracy per variant as horizontal bars, best first."""

from pathlib import Path

import numpy as np

from pipeline.pictures.canvas import panel_figure, render, save_png, style

#: The accuracy the chapter's models reach; the bar chart marks it.
TARGET_ACCURACY = 0.97


def accuracy_bars(names: list[str], accuracies: list[float], path: Path) -> None:
    """Write a horizontal bar chart of test accuracy per variant, top to bottom as given, with
    each value printed beside its bar and a line at the chapter's 0.97."""
    with style():
        # The left margin holds the longest name (about 0.07 inch a character at 8 points).
        left = 0.3 + 0.07 * max(len(name) for name in names)
        figure, panels = panel_figure(
            "Test accuracy per variant", (1, 1), (5.5, 0.3 * len(names) + 0.2), left=left, heads=0
        )
        axes = panels[0, 0]
        rows = np.arange(len(names))
        axes.barh(rows, accuracies, color="#7a8b99")
        for row, accuracy in zip(rows, accuracies, strict=True):
            axes.text(
                accuracy + 0.01,
                row,
                f"{accuracy:.3f}",
                va="center",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},  # over the 0.97 line
            )
        axes.axvline(TARGET_ACCURACY, color="black", linestyle="--", linewidth=1)
        axes.set_yticks(rows, names)
        axes.set_ylim(len(names) - 0.5, -0.5)  # first name on top
        axes.set_xlim(0, 1.1)  # room right of a perfect score for its value
        axes.set_xticks(np.linspace(0, 1, 6))
        axes.set_xlabel(
            f"test accuracy (dashed: {TARGET_ACCURACY}, what the chapter's models reach)"
        )
        values = ", ".join(
            f"{name} {accuracy:.3f}" for name, accuracy in zip(names, accuracies, strict=True)
        )
        description = (
            f"Test accuracy per variant, best first, as horizontal bars: {values}; a dashed "
            f"line at {TARGET_ACCURACY}, what the chapter's models reach."
        )
        save_png(render(figure), path, description)
