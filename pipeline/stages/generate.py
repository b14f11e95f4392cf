"""generate@<dataset>: draw a dataset of noisy squares, or read scikit-learn's digits in a
reading order, and write it as Parquet."""

from pipeline.library.squares import generate_squares, shuffle_points, write_squares
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


def run(context: Context) -> None:
    dataset, output = context.dataset, context.outputs["raw"]
    if dataset.kind == "digits":
        from pipeline.library.digits import generate_digits

        sequences = generate_digits(dataset.order, dataset.seed)
    else:
        sequences = generate_squares(dataset.n, dataset.noise, dataset.seed, dataset.variable_len)
        if dataset.shuffle_points:
            sequences = shuffle_points(sequences, dataset.seed)
    write_squares(sequences, output)
    context.record.dataset(output, "generated")
