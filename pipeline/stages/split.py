"""split@<dataset>: cut a dataset into stratified train, validation and test files."""

from pipeline.library.errors import DatasetError
from pipeline.library.split import PARTS, stratified_split
from pipeline.library.squares import read_squares, write_squares
from pipeline.runtime.declaration import Arg, Stage
from pipeline.runtime.stage import Context, require_memory

STAGE = Stage(
    name="split",
    doc=__doc__,
    item="datasets",
    params=("split",),
    inputs=(Arg("raw", "the generated Parquet file"),),
    outputs=(
        Arg(
            "splits", "where train/val/test.parquet go", files=tuple(f"{p}.parquet" for p in PARTS)
        ),
    ),
)


def check(context: Context) -> None:
    require_memory(context, f"datasets.{context.name}.n", squares=context.dataset.n)


def run(context: Context) -> None:
    source, split = context.inputs["raw"], context.params.split
    squares = read_squares(source)
    context.record.dataset(source, "source")
    indices = stratified_split(squares.labels, split.val, split.test, split.seed)
    empty = [part for part, rows in indices.parts().items() if len(rows) == 0]
    if empty:
        raise DatasetError(
            f"{source}: {len(squares)} squares leave no {' and no '.join(empty)} squares with "
            f"split.val {split.val} and split.test {split.test}"
        )
    for part, rows in indices.parts().items():
        path = context.outputs["splits"] / f"{part}.parquet"
        write_squares(squares.take(rows), path)
        context.record.dataset(path, part)
