"""What a stage's MLflow run records, as plain values: built once here, written by tracking.

`describe_run` turns a stage's declaration and params into what names the run before its
work (`RunStart`: its name, params, tags and inputs); the stage's body notes what it made
in a `Record`; the outputs are `OutputFile`s. pipeline/runtime/tracking/ writes these to
MLflow and knows nothing of the params' schema.
"""

import os
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.runtime import host
from pipeline.runtime.declaration import Stage
from pipeline.runtime.params import Params

#: DVC's variables in runs of `dvc exp run` (temporary or queued), and their tags.
EXPERIMENT_TAGS = {"DVC_EXP_NAME": "dvc.exp_name", "DVC_EXP_BASELINE_REV": "dvc.exp_baseline"}


@dataclass(frozen=True)
class RunStart:
    """What names a run before the stage's work starts."""

    name: str  # the DVC stage: train@gru
    params: dict[str, Any]  # under names every variant shares: arch, lr, data.noise, ...
    dvc_params: dict[str, Any]  # DVC's own dotted params, exactly as dvc.lock records them
    tags: dict[str, str]
    inputs: list[Path]  # the files the stage reads; each md5 becomes a tag


@dataclass(frozen=True)
class OutputFile:
    """An output file: where its bytes are now, where they will be, its artifact's name."""

    staged: Path
    final: Path
    artifact: str  # the same for every variant (model/weights.pt), so runs line up


@dataclass(frozen=True)
class DatasetFile:
    """A Parquet file a run read or wrote: `file` holds its bytes now, `name` is its path once
    the outputs are in place (what MLflow shows), `context` its role (training, test, ...)."""

    file: Path
    name: Path
    context: str


@dataclass(frozen=True)
class LoggedModel:
    """A trained model to log: its checkpoint's directory, what made it, what it accepts
    (the lengths, features, coordinates and classes of its training data), and an input
    example (one training sequence's points; None: the clockwise square A, B, C, D)."""

    directory: Path
    settings: dict[str, Any]
    accepts: dict[str, Any]
    example: list[list[float]] | None = None


@dataclass
class Record:
    """What a stage's body made, beyond its outputs: noted by the body, logged by tracking."""

    datasets: list[DatasetFile] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_dataset: Path | None = None  # the dataset the metrics were measured on
    scored_model: Path | None = None  # the weights the metrics belong to
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch
    model: LoggedModel | None = None

    def dataset(self, path: Path, context: str) -> None:
        self.datasets.append(DatasetFile(Path(path), Path(path), context))

    def renamed(self, final_name: Any) -> "Record":
        """This record with every dataset named by where it will be once committed."""
        named = [replace(used, name=final_name(used.file)) for used in self.datasets]
        return replace(self, datasets=named)


def describe_run(stage: Stage, name: str | None, params: Params, inputs: list[Path]) -> RunStart:
    """The run of `stage` for item `name`: its name and description, its params under shared
    names, DVC's params, its tags."""
    run_name = stage.run_name(name)
    experiment = os.environ.get("DVC_EXP_NAME")
    tags = {
        "dvc.stage": run_name,
        # Runs of `dvc repro` (the results dvc.lock records) and of DVC experiments, apart.
        "pipeline.kind": "experiment" if experiment else "pipeline",
        "mlflow.source.git.commit": git_commit(),
        **host.place(),
        "pid": str(os.getpid()),
        "pid.started": host.started(),
    }
    if stage.item == "models":
        model = params.model(name)
        dataset = params.dataset(model.dataset)
        tags |= {"variant": name, "arch": model.arch, "dataset": model.dataset}
        shared = model.settings() | {
            "device": params.device,
            "cpu_capability": params.cpu_capability,
        }
        shared |= _data_params(params, model.dataset, with_split=True)
        what = (
            f"{model.spec(dataset.shape).describe()}, {model.epochs} epochs on {model.dataset} "
            f"({dataset.describe()})"
        )
    elif stage.item == "datasets":
        tags["dataset"] = name
        with_split = stage.name != "generate"
        shared = {"dataset": name} | _data_params(params, name, with_split=with_split)
        what = params.dataset(name).describe()
    else:
        shared = {"variants": ",".join(params.models), **_split_params(params)}
        what = f"{len(params.models)} variants on one page"
    for variable, tag in EXPERIMENT_TAGS.items():
        if os.environ.get(variable):
            tags[tag] = os.environ[variable]
    where = f"DVC experiment {experiment}" if experiment else "dvc repro"
    tags["mlflow.note.content"] = f"{run_name}: {what}; {where}."
    return RunStart(
        name=f"{run_name} [{experiment}]" if experiment else run_name,
        params=shared,
        dvc_params=params.tracked(*stage.tracked_keys(name)),
        tags=tags,
        inputs=inputs,
    )


def _data_params(params: Params, dataset: str, with_split: bool) -> dict[str, Any]:
    values = {f"data.{key}": value for key, value in vars(params.dataset(dataset)).items()}
    return values | (_split_params(params) if with_split else {})


def _split_params(params: Params) -> dict[str, Any]:
    return {f"data.split_{key}": value for key, value in vars(params.split).items()}


def git_commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"
