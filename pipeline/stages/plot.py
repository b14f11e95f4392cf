"""plot@<model>: the pictures of a trained variant, drawn from its weights.

Recurrent variants: the corners in hidden space, the test hidden states over the
decision boundary step by step, the eight noise-free squares, and the journey of
the hidden state (PNG and GIF). conv1d: its filters and edge features. Both: the
loss and accuracy curves.
"""

import argparse
from pathlib import Path

import torch

from pipeline.checkpoint import load_checkpoint
from pipeline.history import FILES as HISTORY_FILES
from pipeline.history import read_history
from pipeline.params import load_params
from pipeline.parquet_io import read_squares
from pipeline.plots import plot_variant
from pipeline.tracking import stage_run


def main(argv: list[str]) -> None:
    """`plot <model> <model_dir> <test.parquet> <history_dir> <plots_dir>`."""
    parser = argparse.ArgumentParser(prog="python -m pipeline plot", description=__doc__)
    parser.add_argument("model", help="a key of `models` in params.yaml")
    parser.add_argument("model_dir", type=Path, help="holds weights.pt and config.json")
    parser.add_argument("test_file", type=Path, help="the test split")
    parser.add_argument("history_dir", type=Path, help="holds loss.csv and accuracy.csv")
    parser.add_argument("plots_dir", type=Path, help="where the pictures go")
    args = parser.parse_args(argv)

    params = load_params()
    settings = params.model(args.model)
    torch.set_num_threads(1)

    inputs = [
        args.model_dir / "weights.pt",
        args.model_dir / "config.json",
        args.test_file,
        *(args.history_dir / name for name in HISTORY_FILES),
    ]
    tags = {"variant": args.model, "arch": settings.arch, "dataset": settings.dataset}
    with stage_run(
        f"plot@{args.model}", params.tracked(f"models.{args.model}"), inputs, [args.plots_dir], tags
    ):
        plot_variant(
            load_checkpoint(args.model_dir),
            read_squares(args.test_file),
            read_history(args.history_dir),
            args.plots_dir,
        )
