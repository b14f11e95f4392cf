"""train@<model>: fit one model variant on its dataset's training split."""

import argparse
from dataclasses import asdict
from pathlib import Path

import torch

from pipeline.checkpoint import Architecture, save_checkpoint
from pipeline.errors import ParamsError
from pipeline.history import FILES as HISTORY_FILES
from pipeline.history import History, write_history
from pipeline.models import build_model
from pipeline.params import load_params
from pipeline.parquet_io import read_squares
from pipeline.tracking import stage_run
from pipeline.training import LabelledSequences, resolve_device, train


def main(argv: list[str]) -> None:
    """`train <model> <split_dir> <model_dir> <history_dir>`."""
    parser = argparse.ArgumentParser(prog="python -m pipeline train", description=__doc__)
    parser.add_argument("model", help="a key of `models` in params.yaml")
    parser.add_argument("split_dir", type=Path, help="holds train.parquet and val.parquet")
    parser.add_argument("model_dir", type=Path, help="where weights.pt and config.json go")
    parser.add_argument("history_dir", type=Path, help="where loss.csv and accuracy.csv go")
    args = parser.parse_args(argv)

    params = load_params()
    settings = params.model(args.model)
    device = resolve_device(params.device)
    # One thread: CPU kernels split sums by thread count, so this gives the same bytes
    # of weights on every machine (and these models are too small to gain from more).
    torch.set_num_threads(1)

    train_file, val_file = args.split_dir / "train.parquet", args.split_dir / "val.parquet"
    model_files = [args.model_dir / "weights.pt", args.model_dir / "config.json"]
    history_files = [args.history_dir / name for name in HISTORY_FILES]
    tags = {"variant": args.model, "arch": settings.arch, "dataset": settings.dataset}
    with stage_run(
        f"train@{args.model}",
        params.tracked(f"models.{args.model}", "device"),
        [train_file, val_file],
        model_files + history_files,
        tags,
    ) as run:
        train_set, val_set = read_squares(train_file), read_squares(val_file)
        if settings.batch_size > len(train_set):
            raise ParamsError(
                f"{params.source}: models.{args.model}.batch_size must be at most the "
                f"training split's size {len(train_set)} ({train_file}), got {settings.batch_size}"
            )
        architecture = Architecture(
            settings.arch,
            settings.hidden_dim,
            settings.num_layers,
            settings.bidirectional,
            settings.packed,
        )
        model = build_model(**asdict(architecture), seed=settings.seed)
        epochs = train(
            model,
            LabelledSequences.from_squares(train_set),
            validation_data=LabelledSequences.from_squares(val_set),
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            learning_rate=settings.lr,
            shuffle_seed=settings.shuffle_seed,
            device=device,
        )
        save_checkpoint(model, architecture, args.model_dir)
        write_history(History.from_epochs(epochs), args.history_dir)

        run.log_dataset(train_file, context="training")
        run.log_dataset(val_file, context="validation")
        run.log_history([asdict(stats) for stats in epochs], step_key="epoch")
        run.log_model(args.model, args.model_dir, asdict(architecture))
