"""Every variant's curves in one long CSV, the file the comparison charts of `dvc plots` read."""

import csv

import numpy as np

from pipeline.library.history import (
    CURVES_COLUMNS,
    History,
    read_history,
    write_curves,
    write_history,
)


def history(first_epoch_loss: float, epochs: int) -> History:
    """Small explicit curves: loss falls by a tenth an epoch, accuracy rises by a fifth."""
    epoch = np.arange(1, epochs + 1)
    return History(
        epochs=epoch,
        train_loss=first_epoch_loss - 0.1 * (epoch - 1),
        val_loss=first_epoch_loss + 0.05 - 0.1 * (epoch - 1),
        train_accuracy=0.5 + 0.2 * (epoch - 1),
        val_accuracy=0.45 + 0.2 * (epoch - 1),
    )


def test_curves_hold_each_variants_train_and_validation_rows_in_the_mappings_order(
    tmp_path,
) -> None:
    path = tmp_path / "report" / "curves.csv"
    write_curves({"lstm": history(0.7, epochs=2), "gru": history(0.6, epochs=1)}, path)

    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert tuple(rows[0]) == CURVES_COLUMNS
    assert [(row["variant"], row["epoch"], row["split"]) for row in rows] == [
        ("lstm", "1", "train"),
        ("lstm", "2", "train"),
        ("lstm", "1", "validation"),
        ("lstm", "2", "validation"),
        ("gru", "1", "train"),
        ("gru", "1", "validation"),
    ]
    lstm_validation_epoch_2 = rows[3]
    assert float(lstm_validation_epoch_2["loss"]) == 0.7 + 0.05 - 0.1
    assert float(lstm_validation_epoch_2["accuracy"]) == 0.45 + 0.2


def test_curves_keep_every_digit_of_the_history_files_they_come_from(tmp_path) -> None:
    noisy = History(
        epochs=np.arange(1, 4),
        train_loss=np.array([0.6931471805599453, 0.1 + 0.2, 1e-17]),
        val_loss=np.array([0.7, 0.3333333333333333, 2.5e-05]),
        train_accuracy=np.array([0.5, 0.6666666666666666, 1.0]),
        val_accuracy=np.array([0.49, 0.7142857142857143, 0.99]),
    )
    write_history(noisy, tmp_path / "noisy")
    write_curves({"noisy": read_history(tmp_path / "noisy")}, tmp_path / "curves.csv")

    with (tmp_path / "curves.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    validation = [row for row in rows if row["split"] == "validation"]
    assert [float(row["loss"]) for row in validation] == noisy.val_loss.tolist()
    assert [float(row["accuracy"]) for row in validation] == noisy.val_accuracy.tolist()


def test_curves_are_byte_identical_when_written_again(tmp_path) -> None:
    histories = {"rnn": history(0.69, epochs=3), "conv1d": history(0.5, epochs=3)}
    write_curves(histories, tmp_path / "first.csv")
    write_curves(histories, tmp_path / "second.csv")

    assert (tmp_path / "first.csv").read_bytes() == (tmp_path / "second.csv").read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["first.csv", "second.csv"]
