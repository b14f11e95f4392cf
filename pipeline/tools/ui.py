"""`make ui`: MLflow's UI on this repository's store, opened as stages open it.

    python -m pipeline.tools.ui [port]

It prints the link that lands on the pipeline's own runs (`dvc repro`'s, filtered in the search
box, which one click clears): MLflow 3.17's UI otherwise opens experiments on its GenAI
overview, and lists runs newest first, 100 at a time, so that a hundred experiment runs
would hide the pipeline's behind "Load more". A taken port is refused before anything is
printed: MLflow would print nothing useful and exit 0, leaving the link pointing at someone
else.
"""

import os
import sys
from pathlib import Path
from urllib.parse import quote

from pipeline.library.errors import TrackingError
from pipeline.runtime import store, tracking
from pipeline.tools.processes import SERVER_DEFAULTS, bind_error

HOST = "127.0.0.1"
DEFAULT_PORT = 5000
#: The runs the link shows: the pipeline's own, not those of `dvc exp run` or of a sweep.
PIPELINE_RUNS = "tags.`pipeline.kind` = 'pipeline'"


def main(argv: list[str]) -> int:
    """Serve the UI on 127.0.0.1:<port> (default 5000); replaces this process."""
    if len(argv) > 1:
        print("usage: python -m pipeline.tools.ui [port]", file=sys.stderr)
        return 2
    port = argv[0] if argv else str(DEFAULT_PORT)
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        print(f"error: the port must be a number from 1 to 65535, got {port!r}", file=sys.stderr)
        return 1
    reason = bind_error(HOST, int(port))
    if reason is not None:
        print(
            f"error: port {port} on {HOST} is taken ({reason}): stop what uses it, "
            "or choose another: make ui PORT=<port>",
            file=sys.stderr,
        )
        return 1
    uri = store.tracking_uri()
    try:
        experiment_id = tracking.open_experiment(uri)
    except TrackingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    # One person on this machine: one worker, not MLflow's 4, answers sooner and costs less.
    command += ["--host", HOST, "--port", port, "--workers", "1"]
    if uri.startswith("sqlite:///"):
        root = store.local_artifact_root(Path(uri.removeprefix("sqlite:///")))
        command += ["--default-artifact-root", str(root)]
    for variable, value in SERVER_DEFAULTS.items():
        os.environ.setdefault(variable, value)
    page = (
        f"http://{HOST}:{port}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        f"&searchFilter={quote(PIPELINE_RUNS, safe='')}"
    )
    print(f"MLflow UI for {uri}: open {page} (Ctrl-C stops it)", flush=True)
    os.execvp(command[0], command)  # replaces this process: never returns
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
