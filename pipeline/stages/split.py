"""split@<dataset>: cut a dataset into stratified train, validation and test files."""

import argparse
from pathlib import Path

from pipeline.params import load_params
from pipeline.parquet_io import read_squares, write_squares
from pipeline.split import PARTS, stratified_split
from pipeline.tracking import stage_run


def main(argv: list[str]) -> None:
    """`split <dataset> <input.parquet> <output_dir>`: writes train/val/test.parquet."""
    parser = argparse.ArgumentParser(prog="python -m pipeline split", description=__doc__)
    parser.add_argument("dataset", help="a key of `datasets` in params.yaml")
    parser.add_argument("input", type=Path, help="the generated Parquet file")
    parser.add_argument("output_dir", type=Path, help="where train/val/test.parquet go")
    args = parser.parse_args(argv)

    params = load_params()
    params.dataset(args.dataset)
    split = params.split
    outputs = {part: args.output_dir / f"{part}.parquet" for part in PARTS}

    with stage_run(
        f"split@{args.dataset}", params.tracked("split"), [args.input], list(outputs.values())
    ) as run:
        squares = read_squares(args.input)
        run.log_dataset(args.input, context="source")
        indices = stratified_split(squares.labels, split.val, split.test, split.seed)
        for part, rows in indices.parts().items():
            write_squares(squares.take(rows), outputs[part])
            run.log_dataset(outputs[part], context=part)
