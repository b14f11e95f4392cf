"""evaluate@<model>: score a trained variant on its dataset's test split."""

import argparse
from pathlib import Path

import torch

from pipeline.checkpoint import load_checkpoint
from pipeline.files import write_csv, write_json
from pipeline.models import count_parameters
from pipeline.params import load_params
from pipeline.parquet_io import read_squares
from pipeline.tracking import stage_run
from pipeline.training import LabelledSequences, evaluate, predict_proba

CLASS_NAMES = ("counter_clockwise", "clockwise")  # label 0, label 1


def main(argv: list[str]) -> None:
    """`evaluate <model> <model_dir> <test.parquet> <metrics.json> <predictions.csv>`."""
    parser = argparse.ArgumentParser(prog="python -m pipeline evaluate", description=__doc__)
    parser.add_argument("model", help="a key of `models` in params.yaml")
    parser.add_argument("model_dir", type=Path, help="holds weights.pt and config.json")
    parser.add_argument("test_file", type=Path, help="the test split")
    parser.add_argument("metrics", type=Path, help="the metrics file to write (JSON)")
    parser.add_argument("predictions", type=Path, help="per-sequence predictions (CSV)")
    args = parser.parse_args(argv)

    params = load_params()
    settings = params.model(args.model)
    torch.set_num_threads(1)

    weights = args.model_dir / "weights.pt"
    tags = {"variant": args.model, "arch": settings.arch, "dataset": settings.dataset}
    with stage_run(
        f"evaluate@{args.model}",
        params.tracked(f"models.{args.model}"),
        [weights, args.model_dir / "config.json", args.test_file],
        [args.metrics, args.predictions],
        tags,
    ) as run:
        model = load_checkpoint(args.model_dir)
        test_set = read_squares(args.test_file)
        data = LabelledSequences.from_squares(test_set)
        evaluation = evaluate(model, data)
        probabilities = predict_proba(model, data).tolist()

        confusion = evaluation.confusion  # rows: true label, columns: predicted label
        metrics = {
            "accuracy": float(confusion.trace() / confusion.sum()),
            "loss": evaluation.loss,
            "parameters": count_parameters(model),
            **{
                name: {
                    "correct": int(confusion[label, label]),
                    "total": int(confusion[label].sum()),
                }
                for label, name in enumerate(CLASS_NAMES)
            },
        }
        write_json(args.metrics, metrics)
        write_csv(
            args.predictions,
            ["seq_id", "actual", "predicted", "probability"],
            zip(
                test_set.seq_ids.tolist(),
                test_set.labels.tolist(),
                [int(p > 0.5) for p in probabilities],
                probabilities,
                strict=True,
            ),
        )
        run.log_dataset(args.test_file, context="testing")
        run.log_metrics(
            {"test_accuracy": metrics["accuracy"], "test_loss": metrics["loss"]}
            | {f"test_{name}_correct": metrics[name]["correct"] for name in CLASS_NAMES},
            model_file=weights,
        )
