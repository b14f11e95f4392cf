"""generate@<dataset>: draw a dataset of noisy squares, or read scikit-learn's digits in a
reading order, and write it as Parquet."""

from pipeline.library.settings import DatasetParams
from pipeline.library.squares import Squares, generate_squares, shuffle_points, write_squares
from pipeline.runtime.declaration import Arg, Stage
from pipeline.runtime.stage import Context, require_memory

STAGE = Stage(
    name="generate",
    doc=__doc__,
    item="datasets",
    params=("datasets.{name}",),
    inputs=(),
    outputs=(Arg("raw", "the Parquet file to write"),),
)


def check(context: Context) -> None:
    require_memory(context, f"datasets.{context.name}.n", squares=context.dataset.n)


def sequences_of(dataset: DatasetParams) -> Squares:
    """The sequences a dataset's params describe, whatever its kind."""
    if dataset.kind == "digits":
        from pipeline.library.digits import generate_digits

        return generate_digits(dataset.order, dataset.seed)
    sequences = generate_squares(dataset.n, dataset.noise, dataset.seed, dataset.variable_len)
    return shuffle_points(sequences, dataset.seed) if dataset.shuffle_points else sequences


def run(context: Context) -> None:
    output = context.outputs["raw"]
    write_squares(sequences_of(context.dataset), output)
    context.record.dataset(output, "generated")
