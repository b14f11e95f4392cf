"""A training run's curves on disk: `loss.csv` and `accuracy.csv`, one row per epoch.

Both files have the columns `epoch,train,val`. `write_curves` gathers every variant's curves
into one long CSV, which `dvc plots` templates group by variant (see dvc.yaml's `plots:`).
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.library.errors import InputError
from pipeline.library.files import write_csv

FILES = ("loss.csv", "accuracy.csv")
COLUMNS = ("epoch", "train", "val")
#: One row per variant, epoch and split; `split` is "train" or "validation".
CURVES_COLUMNS = ("variant", "epoch", "split", "loss", "accuracy")


@dataclass(frozen=True)
class History:
    """Per-epoch curves, every field (E,): epoch numbers, training and validation loss
    (mean binary cross-entropy) and accuracy."""

    epochs: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    train_accuracy: np.ndarray
    val_accuracy: np.ndarray

    @classmethod
    def from_epochs(cls, epochs: Sequence[Any]) -> "History":
        """From per-epoch records with the fields epoch, train_loss, val_loss,
        train_accuracy and val_accuracy (training.EpochStats)."""

        def column(field: str) -> np.ndarray:
            return np.array([getattr(epoch, field) for epoch in epochs])

        return cls(
            column("epoch"),
            column("train_loss"),
            column("val_loss"),
            column("train_accuracy"),
            column("val_accuracy"),
        )


def write_history(history: History, directory: Path) -> list[Path]:
    """Write `loss.csv` and `accuracy.csv` into `directory`; their paths."""
    paths = [Path(directory) / name for name in FILES]
    epochs = history.epochs.tolist()
    for path, train, val in (
        (paths[0], history.train_loss, history.val_loss),
        (paths[1], history.train_accuracy, history.val_accuracy),
    ):
        write_csv(path, COLUMNS, zip(epochs, train.tolist(), val.tolist(), strict=True))
    return paths


def read_history(directory: Path) -> History:
    """The curves written by `write_history`; InputError naming a missing or bad file."""
    columns = {}
    for name in FILES:
        path = Path(directory) / name
        try:
            header = path.read_text().splitlines()[0]
            table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        except FileNotFoundError:
            raise InputError(f"{path}: file not found") from None
        except (IndexError, ValueError, UnicodeDecodeError):
            raise InputError(f"{path}: not a CSV of {','.join(COLUMNS)} numbers") from None
        if header != ",".join(COLUMNS) or table.shape[1] != len(COLUMNS):
            raise InputError(f"{path}: expected the columns {','.join(COLUMNS)}")
        if len(table) == 0 or not np.isfinite(table).all():
            raise InputError(f"{path}: needs at least one epoch, every value a finite number")
        columns[name] = table
    loss, accuracy = columns["loss.csv"], columns["accuracy.csv"]
    return History(
        epochs=loss[:, 0].astype(np.int64),
        train_loss=loss[:, 1],
        val_loss=loss[:, 2],
        train_accuracy=accuracy[:, 1],
        val_accuracy=accuracy[:, 2],
    )


def write_curves(histories: Mapping[str, History], path: Path) -> None:
    """Write every variant's curves to one CSV of `CURVES_COLUMNS`, in the mapping's order.

    One long file, not a file per variant, so that a chart drawn from it shows whichever
    variants params.yaml lists, without naming them anywhere.
    """
    rows = (row for variant, history in histories.items() for row in _curve_rows(variant, history))
    write_csv(path, CURVES_COLUMNS, rows)


def _curve_rows(variant: str, history: History) -> Iterator[tuple]:
    """The rows of one variant: its training curve, then its validation curve."""
    epochs = history.epochs.tolist()
    for split, loss, accuracy in (
        ("train", history.train_loss, history.train_accuracy),
        ("validation", history.val_loss, history.val_accuracy),
    ):
        for epoch, loss_value, accuracy_value in zip(
            epochs, loss.tolist(), accuracy.tolist(), strict=True
        ):
            yield variant, epoch, split, loss_value, accuracy_value
