"""generate@<dataset>: draw a dataset of noisy squares and write it as Parquet."""

import argparse
from pathlib import Path

from pipeline.params import load_params
from pipeline.parquet_io import write_squares
from pipeline.squares import generate_squares, shuffle_points
from pipeline.tracking import stage_run


def main(argv: list[str]) -> None:
    """`generate <dataset> <output.parquet>`."""
    parser = argparse.ArgumentParser(prog="python -m pipeline generate", description=__doc__)
    parser.add_argument("dataset", help="a key of `datasets` in params.yaml")
    parser.add_argument("output", type=Path, help="the Parquet file to write")
    args = parser.parse_args(argv)

    params = load_params()
    dataset = params.dataset(args.dataset)
    tracked = params.tracked(f"datasets.{args.dataset}")

    with stage_run(f"generate@{args.dataset}", tracked, [], [args.output]) as run:
        squares = generate_squares(dataset.n, dataset.noise, dataset.seed, dataset.variable_len)
        if dataset.shuffle_points:
            squares = shuffle_points(squares, dataset.seed)
        write_squares(squares, args.output)
        run.log_dataset(args.output, context="generated")
