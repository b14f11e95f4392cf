"""A sweep's summary (pipeline/tools/sweep.py) as one run, `sweep@<name>`, the parent of
every run of its experiments, so the UI nests them under it."""

import hashlib
from pathlib import Path
from typing import Any

import mlflow

from pipeline.library.files import md5_of
from pipeline.runtime import store
from pipeline.runtime.record import git_commit
from pipeline.runtime.tracking.connection import connect, mlflow_errors


def log_sweep(
    sweep: str,
    settings: dict[str, Any],
    baseline: str,
    experiments: list[str],
    files: list[Path],
    metrics: dict[str, float],
) -> str:
    """Log a sweep's summary as one run, `sweep@<sweep>`, and make it the parent of every run
    of its experiments (found by their `dvc.exp_name` and `dvc.exp_baseline` tags); its id.

    A summary already logged with the same files (tag `sweep.digest`) is not logged again:
    a rerun that changes nothing adds no run, as a DVC stage that does not run adds none.
    """
    uri = store.tracking_uri()
    digest = hashlib.md5("".join(md5_of(path) for path in files).encode()).hexdigest()
    with mlflow_errors(uri, f"cannot log sweep {sweep}"):
        experiment_id = connect(uri)
        client = mlflow.MlflowClient()
        logged = client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`dvc.sweep` = '{sweep}' and tags.`sweep.digest` = '{digest}' "
                "and attributes.status = 'FINISHED'"
            ),
            max_results=1,
        )
        if logged:
            return logged[0].info.run_id
        tags = {
            "dvc.sweep": sweep,
            "dvc.exp_baseline": baseline,
            "sweep.digest": digest,
            "mlflow.source.git.commit": git_commit(),
        }
        name = f"sweep@{sweep}"
        with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags) as run:
            mlflow.log_params(settings)
            mlflow.log_metrics(metrics)
            for path in files:
                mlflow.log_artifact(str(path))
            children = _experiment_runs(client, experiment_id, baseline, set(experiments))
            for child in children:
                client.set_tag(child, "mlflow.parentRunId", run.info.run_id)
            mlflow.set_tag("sweep.children", str(len(children)))
        return run.info.run_id


def _experiment_runs(
    client: Any, experiment_id: str, baseline: str, experiments: set[str]
) -> list[str]:
    """The ids of the runs that stages of these DVC experiments (of `baseline`) logged."""
    found, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`dvc.exp_baseline` = '{baseline}'",
            max_results=1000,
            page_token=token,
        )
        found += [
            run.info.run_id for run in page if run.data.tags.get("dvc.exp_name") in experiments
        ]
        token = page.token
        if not token:
            return found
