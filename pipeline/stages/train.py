"""train@<model>: fit one model variant on its dataset's training split."""

from dataclasses import asdict

from pipeline.library.errors import ParamsError
from pipeline.library.history import FILES as HISTORY_FILES
from pipeline.library.history import History, write_history
from pipeline.library.models import CONFIG_FILE, WEIGHTS_FILE, build_model, save_checkpoint
from pipeline.library.squares import count_rows, extent, read_squares, shape_of
from pipeline.library.training import (
    LabelledSequences,
    TrainingDivergedError,
    resolve_device,
    train,
)
from pipeline.runtime.declaration import Arg, Stage
from pipeline.runtime.record import LoggedModel
from pipeline.runtime.stage import Context, require_memory

STAGE = Stage(
    name="train",
    doc=__doc__,
    item="models",
    params=("models.{name}", "device", "cpu_capability"),
    inputs=(
        Arg("splits", "holds train.parquet and val.parquet", ("train.parquet", "val.parquet")),
    ),
    outputs=(
        Arg("checkpoint", "where weights.pt and config.json go", (WEIGHTS_FILE, CONFIG_FILE)),
        Arg("history", "where loss.csv and accuracy.csv go", HISTORY_FILES),
    ),
    uses_torch=True,
)


def check(context: Context) -> None:
    key, settings = f"models.{context.name}", context.model
    try:
        resolve_device(context.params.device)
    except ValueError as error:
        raise ParamsError(f"{context.params.source}: device {error}") from None
    train_file = context.inputs["splits"] / "train.parquet"
    rows = count_rows(train_file)
    if settings.batch_size > rows:
        raise ParamsError(
            f"{context.params.source}: {key}.batch_size must be at most the training split's "
            f"size {rows} ({train_file}), got {settings.batch_size}"
        )
    spec = settings.spec(context.dataset.shape)
    require_memory(context, f"{key}.hidden_dim", squares=rows, spec=spec)


def run(context: Context) -> None:
    settings, splits = context.model, context.inputs["splits"]
    train_file, val_file = splits / "train.parquet", splits / "val.parquet"
    training = read_squares(train_file)
    spec = settings.spec(shape_of(training))  # features, steps and classes: the data's
    model = build_model(spec, seed=settings.seed)
    try:
        epochs = train(
            model,
            LabelledSequences.from_squares(training),
            validation_data=LabelledSequences.from_squares(read_squares(val_file)),
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            learning_rate=settings.lr,
            shuffle_seed=settings.shuffle_seed,
            device=resolve_device(context.params.device),
            on_epoch=lambda stats: context.progress.update(
                f"epoch {stats.epoch}/{settings.epochs}, loss {stats.train_loss:.4g}"
            ),
        )
    except TrainingDivergedError as error:
        raise ParamsError(
            f"{context.params.source}: models.{context.name}.lr: {error}; try a smaller one"
        ) from None
    save_checkpoint(model, spec, context.outputs["checkpoint"])
    write_history(History.from_epochs(epochs), context.outputs["history"])

    context.record.dataset(train_file, "training")
    context.record.dataset(val_file, "validation")
    context.record.history = [asdict(stats) for stats in epochs]
    context.record.model = LoggedModel(
        directory=context.outputs["checkpoint"],
        settings=settings.settings() | {"cpu_capability": context.params.cpu_capability},
        accepts=extent(training),
        example=training.points[0, : training.lengths[0]].tolist(),
    )
