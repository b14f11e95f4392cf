"""One MLflow run per DVC stage execution, writing what pipeline/runtime/record.py built.

A run is named after its DVC stage (`train@gru`) and records:
- params under names every variant shares (`arch`, `hidden_dim`, `lr`, `seed`, ...,
  and `data.n`, `data.noise`, ... for the data it learned from), so Compare has one
  column per setting; DVC's own dotted params, exactly as dvc.lock has them, as the
  artifact `dvc_params.json`;
- tags: `dvc.stage`, the git commit, where it ran, `dvc.exp_name` and `dvc.exp_baseline`
  for runs of `dvc exp run`, and `input/<path>` / `output/<path>` holding each file's md5
  (the hash DVC writes in dvc.lock);
- its Parquet files as dataset inputs whose digest is that md5;
- every output as an artifact at a path shared by every variant (`model/weights.pt`,
  `plots/journey.png`), or above ARTIFACT_LIMIT_BYTES as a reference;
- metrics, and for a training stage the model, loadable with `mlflow.pyfunc`.
"""

import json
import re
import tempfile
import time
import warnings
from contextlib import suppress
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import LoggedModelInput, Metric
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

from pipeline.library.files import linked_tree, md5_of
from pipeline.runtime import host, store
from pipeline.runtime.record import LoggedModel, OutputFile, Record, RunStart
from pipeline.runtime.tracking.connection import (
    apply_environment_defaults,
    connect,
    mlflow_errors,
    settled,
)
from pipeline.runtime.tracking.served_model import load_model_dir, write_accepts

ARTIFACT_LIMIT_BYTES = 20 * 2**20
#: The logged model's input example: the clockwise square A, B, C, D.
SQUARE_EXAMPLE = [[-1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [1.0, -1.0]]
#: Characters MLflow accepts in tag keys; anything else in a path becomes "_".
_TAG_KEY_UNSAFE = re.compile(r"[^\w./ :-]")
_MAX_KEY = 250  # MLflow's longest key


class StageRun:
    """The MLflow run of one stage execution."""

    def __init__(self, run_id: str, experiment_id: str, uri: str, package_dir: Path) -> None:
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.uri = uri
        self.package_dir = package_dir

    @classmethod
    def start(cls, described: RunStart, package_dir: Path) -> "StageRun":
        """Start the run `described`; log its params, DVC params and tags, and its inputs' md5s."""
        apply_environment_defaults()
        uri = store.tracking_uri()
        with mlflow_errors(uri, "cannot start a run"):
            experiment_id = connect(uri)
            _end_abandoned_runs(experiment_id, described.name)
            tags = described.tags | {
                _tag_key("input", path): md5_of(path) for path in _files(described.inputs)
            }
            run = mlflow.start_run(experiment_id=experiment_id, run_name=described.name, tags=tags)
            try:
                mlflow.log_params(described.params)
                mlflow.log_dict(described.dvc_params, "dvc_params.json")
            except BaseException:  # a run that cannot record what it is ends FAILED at once
                with suppress(Exception):
                    mlflow.end_run("FAILED")
                raise
        return cls(run.info.run_id, experiment_id, uri, package_dir)

    def record(self, record: Record, outputs: list[OutputFile]) -> None:
        """Log what the body noted, and every output (tags, artifacts)."""
        with mlflow_errors(self.uri, "cannot record the run"):
            if record.datasets:
                datasets = [_dataset(used.file, used.name) for used in record.datasets]
                contexts = [used.context for used in record.datasets]
                settled(
                    lambda: mlflow.log_inputs(
                        datasets=datasets, contexts=contexts, tags_list=[None] * len(datasets)
                    )
                )
            if record.history:
                now = int(time.time() * 1000)
                metrics = [
                    Metric(key, float(value), now, int(row["epoch"]))
                    for row in record.history
                    for key, value in row.items()
                    if key != "epoch" and value is not None
                ]
                mlflow.MlflowClient().log_batch(self.run_id, metrics=metrics)
            if record.model is not None:
                self._log_model(record.model)
            if record.metrics:
                self._log_metrics(record)
            self._log_outputs(outputs)

    def end(self, status: str) -> None:
        """End the run FINISHED, FAILED or KILLED."""
        with mlflow_errors(self.uri, f"cannot end the run {status}"):
            mlflow.end_run(status)

    def _log_model(self, model: LoggedModel) -> None:
        """The checkpoint as a pyfunc model at the run's `model` path (`runs:/<id>/model`):
        what it accepts, a signature a client can meet, one example, what made it."""
        with tempfile.TemporaryDirectory(prefix="model-") as scratch:
            # Logged from a folder of its own: the staged folder's name must not travel.
            files = {f"data/{file.name}": file for file in model.directory.iterdir()}
            directory = linked_tree(files, scratch) / "data"
            write_accepts(directory, model.accepts, model.settings["cpu_capability"])
            example = pd.DataFrame({"points": [model.example or SQUARE_EXAMPLE]})
            with warnings.catch_warnings():  # MLflow's hints about column types are not news
                warnings.simplefilter("ignore", UserWarning)
                probabilities = load_model_dir(directory).predict(example)
                signature = ModelSignature(
                    inputs=Schema(
                        [
                            ColSpec(AnyType(), "points"),
                            ColSpec(DataType.long, "seq_id", required=False),
                        ]
                    ),
                    outputs=infer_signature(example, probabilities).outputs,
                )
                info = mlflow.pyfunc.log_model(
                    name="model",
                    loader_module=load_model_dir.__module__,
                    data_path=str(directory),
                    code_paths=[str(self.package_dir)],
                    pip_requirements=[
                        f"{package}=={version(package).split('+')[0]}"
                        for package in ("torch", "numpy", "pandas", "pyarrow")
                    ],
                    signature=signature,
                    input_example=example,
                    params={key: str(value) for key, value in model.settings.items()},
                )
        mlflow.set_tag("model_id", info.model_id)

    def _log_metrics(self, record: Record) -> None:
        """Final metrics, linked to the dataset they were measured on and to the model scored.

        The model is found by content: the training run whose output has the md5 of the
        weights scored. The metrics go on that run too, so comparing training runs in
        `mlflow ui` shows their test accuracy, and the Models tab lists it beside each model.
        """
        model_id = None
        if record.scored_model is not None:
            training_run = self._run_that_wrote(record.scored_model)
            if training_run is not None:
                mlflow.set_tag("training_run_id", training_run.info.run_id)
                model_id = training_run.data.tags.get("model_id")
                if model_id:
                    settled(lambda: mlflow.log_input(model=LoggedModelInput(model_id)))
                now = int(time.time() * 1000)
                mlflow.MlflowClient().log_batch(
                    training_run.info.run_id,
                    metrics=[
                        Metric(key, float(value), now, 0) for key, value in record.metrics.items()
                    ],
                )
        dataset = None
        if record.metrics_dataset is not None:  # an input: its name is where it is
            dataset = _dataset(record.metrics_dataset, record.metrics_dataset)
        settled(lambda: mlflow.log_metrics(record.metrics, model_id=model_id, dataset=dataset))

    def _run_that_wrote(self, path: Path) -> Any:
        key = _tag_key("output", path)
        runs = mlflow.MlflowClient().search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{key}` = '{md5_of(path)}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0] if runs else None

    def _log_outputs(self, outputs: list[OutputFile]) -> None:
        """Tag every output with its md5; log each as an artifact under its shared name."""
        digests = {output.final: md5_of(output.staged) for output in outputs}
        mlflow.set_tags({_tag_key("output", final): digest for final, digest in digests.items()})
        references, artifacts = {}, {}
        for output in outputs:
            size = output.staged.stat().st_size
            if size > ARTIFACT_LIMIT_BYTES:
                references[output.artifact] = {
                    "path": _name(output.final),
                    "md5": digests[output.final],
                    "bytes": size,
                }
            else:
                artifacts[output.artifact] = output.staged
        with tempfile.TemporaryDirectory(prefix="artifacts-") as scratch:
            tree = linked_tree(artifacts, scratch)
            if references:
                (tree / "references.json").write_text(json.dumps(references, indent=2))
            mlflow.log_artifacts(str(tree))


def _end_abandoned_runs(experiment_id: str, run_name: str) -> None:
    """Mark KILLED the runs of this stage left RUNNING by a process that is gone.

    A SIGKILL (or a power cut) gives a stage no chance to end its run; the next run of
    the same stage, in the same place (host, boot, PID namespace), tidies up after it.
    """
    client = mlflow.MlflowClient()
    here = " and ".join(f"tags.`{key}` = '{value}'" for key, value in host.place().items())
    abandoned = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`dvc.stage` = '{run_name}' and {here} and attributes.status = 'RUNNING'"
        ),
    )
    for run in abandoned:
        pid = int(run.data.tags.get("pid", "0"))
        if pid > 0 and not host.process_runs(pid, run.data.tags.get("pid.started", "")):
            client.set_terminated(run.info.run_id, "KILLED")


def _files(paths: list[Path]) -> list[Path]:
    """Every file of `paths`, a directory standing for the files in it."""
    return sorted(
        file
        for path in paths
        for file in ([path] if path.is_file() else path.rglob("*"))
        if file.is_file() and ".staged-" not in file.name
    )


def _name(path: Path | str) -> str:
    """How a file is named in MLflow: relative to the working directory, as in dvc.lock.

    A file elsewhere keeps its absolute path without the leading slash: MLflow takes
    names as relative paths.
    """
    resolved, here = Path(path).resolve(), Path.cwd().resolve()
    if resolved.is_relative_to(here):
        return resolved.relative_to(here).as_posix()
    return resolved.as_posix().lstrip("/")


def _tag_key(prefix: str, path: Path) -> str:
    """`<prefix>/<path>` as a valid MLflow tag key (unsafe characters become '_')."""
    key = _TAG_KEY_UNSAFE.sub("_", f"{prefix}/{_name(path)}")
    if len(key) > _MAX_KEY:
        import hashlib

        key = key[: _MAX_KEY - 9] + "_" + hashlib.md5(key.encode()).hexdigest()[:8]
    return key


def _dataset(path: Path, final: Path) -> MetaDataset:
    with warnings.catch_warnings():
        # MLflow registers the local source for both "" and "file:" and warns
        # that a plain path matches both; either is the same class.
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(_name(final))
    return MetaDataset(source=source, name=_name(final), digest=md5_of(path))
