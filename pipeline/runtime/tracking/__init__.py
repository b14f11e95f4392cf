"""MLflow tracking: the only package that calls MLflow.

- `run.py`: one run per DVC stage execution, writing what pipeline/runtime/record.py built
  (params, tags, datasets, artifacts, metrics, the model);
- `connection.py`: opening a store (local or a server) and the pipeline's experiment in it;
- `sweep.py`: a sweep's summary as one run, the parent of its experiments' runs.

Where the store is and how a local one is opened safely is pipeline/runtime/store.py.
MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_NAME override the store and the experiment.
"""

from pipeline.runtime.tracking.connection import client, open_experiment
from pipeline.runtime.tracking.run import StageRun
from pipeline.runtime.tracking.sweep import log_sweep

__all__ = ["StageRun", "client", "log_sweep", "open_experiment"]
