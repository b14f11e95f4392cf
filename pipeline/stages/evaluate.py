"""evaluate@<model>: score a trained variant on its dataset's test split."""

import math

from pipeline.library.errors import InputError
from pipeline.library.files import write_csv, write_json
from pipeline.library.models import WEIGHTS_FILE, count_parameters, load_checkpoint
from pipeline.library.squares import LABEL_NAMES, metric_key, read_squares
from pipeline.library.training import LabelledSequences, evaluate, predict_proba
from pipeline.runtime.declaration import Arg, Stage
from pipeline.runtime.stage import Context
from pipeline.stages import MODEL, TEST

STAGE = Stage(
    name="evaluate",
    doc=__doc__,
    item="models",
    params=("models.{name}", "cpu_capability"),
    inputs=(MODEL, TEST),
    outputs=(
        Arg("metrics", "the metrics file to write (JSON): accuracy, loss, parameters"),
        Arg("confusion", "the confusion matrix to write (JSON): counts per class"),
        Arg("predictions", "every test sequence's prediction (CSV)"),
    ),
    uses_torch=True,
)


def run(context: Context) -> None:
    model_dir, test_file = context.inputs["model"], context.inputs["test"]
    model, test_set = load_checkpoint(model_dir), read_squares(test_file)
    data = LabelledSequences.from_squares(test_set)
    evaluation = evaluate(model, data)
    probabilities = predict_proba(model, data).tolist()
    if not all(map(math.isfinite, [evaluation.loss, *probabilities])):
        raise InputError(
            f"{model_dir / WEIGHTS_FILE}: the model's outputs on {test_file} are not finite"
        )

    confusion = evaluation.confusion  # rows: true label, columns: predicted label
    metrics = {
        "test_accuracy": float(confusion.trace() / confusion.sum()),
        "test_loss": evaluation.loss,
        "parameters": count_parameters(model),
    }
    # Counts per class go to a file of their own: `dvc metrics show` stays a table a
    # terminal holds, whatever the number of classes.
    write_json(context.outputs["metrics"], metrics)
    write_json(
        context.outputs["confusion"],
        {"classes": list(LABEL_NAMES), "confusion": confusion.tolist()},
    )
    write_csv(
        context.outputs["predictions"],
        ["seq_id", "actual", "predicted", "probability"],
        zip(
            test_set.seq_ids.tolist(),
            [LABEL_NAMES[label] for label in test_set.labels.tolist()],
            [LABEL_NAMES[int(p > 0.5)] for p in probabilities],
            probabilities,
            strict=True,
        ),
    )
    context.record.dataset(test_file, "testing")
    context.record.metrics = {key: value for key, value in metrics.items() if key != "parameters"}
    for label in range(len(LABEL_NAMES)):  # in MLflow, per class as before: one run, one row
        context.record.metrics[metric_key(label, "correct")] = int(confusion[label, label])
        context.record.metrics[metric_key(label, "total")] = int(confusion[label].sum())
    context.record.metrics_dataset = test_file
    context.record.scored_model = model_dir / WEIGHTS_FILE
