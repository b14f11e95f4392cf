"""evaluate@<model>: score a trained variant on its dataset's test split."""

import math

from pipeline.library.errors import InputError
from pipeline.library.files import write_csv, write_json
from pipeline.library.models import WEIGHTS_FILE, count_parameters, load_checkpoint
from pipeline.library.squares import metric_key, read_squares
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
        Arg(
            "predictions",
            "every test sequence's prediction (CSV): two classes, P(class 1); more, the "
            "predicted class's probability",
        ),
    ),
    uses_torch=True,
)


def run(context: Context) -> None:
    model_dir, test_file = context.inputs["model"], context.inputs["test"]
    model, test_set = load_checkpoint(model_dir), read_squares(test_file)
    data = LabelledSequences.from_squares(test_set)
    evaluation = evaluate(model, data)
    classes = test_set.classes
    probabilities = predict_proba(model, data)
    if probabilities.dim() == 1:  # two classes: P(class 1), predicted above one half
        predicted = [int(p > 0.5) for p in probabilities.tolist()]
        probabilities = probabilities.tolist()
    else:  # more: the likeliest class, and its probability
        best = probabilities.max(dim=1)
        predicted, probabilities = best.indices.tolist(), best.values.tolist()
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
        {"classes": list(classes), "confusion": confusion.tolist()},
    )
    write_csv(
        context.outputs["predictions"],
        ["seq_id", "actual", "predicted", "probability"],
        zip(
            test_set.seq_ids.tolist(),
            [classes[label] for label in test_set.labels.tolist()],
            [classes[label] for label in predicted],
            probabilities,
            strict=True,
        ),
    )
    context.record.dataset(test_file, "testing")
    context.record.metrics = {key: value for key, value in metrics.items() if key != "parameters"}
    for label, name in enumerate(classes):  # in MLflow, per class: one run, one row
        context.record.metrics[metric_key(name, "correct")] = int(confusion[label, label])
        context.record.metrics[metric_key(name, "total")] = int(confusion[label].sum())
    context.record.metrics_dataset = test_file
    context.record.scored_model = model_dir / WEIGHTS_FILE
