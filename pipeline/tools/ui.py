"""`make ui`: MLflow's UI on this repository's store, opened as stages open it.

    python -m pipeline.tools.ui [port]

It prints the link that lands on the experiment's runs: MLflow 3.17's UI otherwise opens
experiments on its GenAI overview.
"""

import os
import sys
from pathlib import Path

from pipeline.library.errors import TrackingError
from pipeline.runtime import store, tracking


def main(argv: list[str]) -> int:
    """Serve the UI on 127.0.0.1:<port> (default 5000); replaces this process."""
    if len(argv) > 1:
        print("usage: python -m pipeline.tools.ui [port]", file=sys.stderr)
        return 2
    port = argv[0] if argv else "5000"
    uri = store.tracking_uri()
    try:
        experiment_id = tracking.open_experiment(uri)
    except TrackingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    # One person on this machine: one worker, not MLflow's 4, answers sooner and costs less.
    command += ["--host", "127.0.0.1", "--port", port, "--workers", "1"]
    if uri.startswith("sqlite:///"):
        root = store.local_artifact_root(Path(uri.removeprefix("sqlite:///")))
        command += ["--default-artifact-root", str(root)]
    page = f"http://127.0.0.1:{port}/#/experiments/{experiment_id}?workflowType=machine_learning"
    print(f"MLflow UI for {uri}: open {page} (Ctrl-C stops it)", flush=True)
    os.execvp(command[0], command)  # replaces this process: never returns
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
