"""loss_curves.png: how a variant trained, whatever its kind."""

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter

from pipeline.pictures.canvas import panel_figure, render
from pipeline.pictures.shared import Picture, Subject


def loss_curves(subject: Subject[object]) -> Picture:
    """Loss and accuracy per epoch, training against validation; one legend under both."""
    history, title = subject.history, subject.title
    figure, panels = panel_figure(
        f"{title}: loss and accuracy per epoch",
        (1, 2),
        (3.2, 2.4),
        left=0.85,
        bottom=1.0,
        gaps=(0.95, 0.0),
        heads=0.1,
    )
    loss, accuracy = panels[0]
    for axes, train, val, label in (
        (loss, history.train_loss, history.val_loss, f"loss ({subject.loss})"),
        (accuracy, history.train_accuracy, history.val_accuracy, "accuracy"),
    ):
        axes.plot(history.epochs, train, color="#444444")
        axes.plot(history.epochs, val, color="#e07b00")
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
    loss.set_yscale("log")
    # Plain numbers (0.001, 0.7), not powers of ten; within one decade, every minor tick too.
    plain_numbers = FuncFormatter(lambda value, _: f"{value:.3g}")
    loss.yaxis.set_major_formatter(plain_numbers)
    losses = np.concatenate([history.train_loss, history.val_loss])
    within_a_decade = np.log10(losses.max() / losses.min()) < 1
    loss.yaxis.set_minor_formatter(plain_numbers if within_a_decade else NullFormatter())
    accuracy.set_ylim(0, 1.02)
    figure.legend(
        handles=[
            Line2D([], [], color="#444444", label="training"),
            Line2D([], [], color="#e07b00", label="validation"),
        ],
        loc="lower center",
        ncols=2,
        frameon=False,
    )
    description = (
        f"{title}: training (grey) and validation (orange) loss, on a log scale, and accuracy "
        f"over {len(history.epochs)} epochs."
    )
    return render(figure), description
