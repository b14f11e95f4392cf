"""The logged MLflow model: a trained checkpoint that scores sequences a client sends.

MLflow loads a logged model through `_load_pyfunc` (this module is its `loader_module`). A
client sends what it has, a sequence's points, one row per sequence; for a square:

    {"dataframe_records": [{"points": [[-1, -1], [-1, 1], [1, 1], [1, -1]]}]}

(each point a list of as many numbers as the training data's points have, F: a square's
`[x, y]`, a row of digit pixels; JSON integers or floats, or `{"x0": x, ..., "x{F-1}": ...}`
as in the Parquet files; an optional `seq_id` is ignored). For two classes it answers the
probability of class 1 per row (P(clockwise)), for more each class's probability, exactly as
the evaluate stage does: the CPU kernels are pinned as the stages pin them before torch runs
anything. A row the model was not trained for (a length outside its training data's,
coordinates that are not finite or far outside them) is refused with MLflow's 400 and one
line saying which row and why.
"""

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from pipeline.library import numerics

#: The file in the model's data folder that says what it accepts and how it was computed.
ACCEPTS_FILE = "accepts.json"
#: Coordinates are refused beyond this multiple of the training data's largest.
COORDINATE_MARGIN = 10


class SquareClassifier:
    """A trained model that scores sequences (squares, digits) given as lists of points."""

    def __init__(self, model: Any, accepts: dict[str, Any]) -> None:
        self.model = model
        self.lengths = range(accepts["min_length"], accepts["max_length"] + 1)
        self.limit = COORDINATE_MARGIN * accepts["max_abs_coordinate"]
        self.features = accepts.get("n_features", 2)  # a model logged before digits: squares
        self.classes = tuple(accepts.get("classes", ("counter-clockwise", "clockwise")))

    def predict(self, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        """Two classes: P(class 1) (N,) of each row's sequence; more: (N, C), each class's."""
        del params  # the model takes no inference params
        from pipeline.library.squares import Squares, pad_points
        from pipeline.library.training import LabelledSequences, predict_proba

        if "points" not in model_input:
            raise _refused("the input has no `points` column (one list of [x, y] per square)")
        rows = [self._points(index, row) for index, row in enumerate(model_input["points"])]
        lengths = np.array([len(row) for row in rows], dtype=np.int64)
        flat = np.concatenate(rows) if rows else np.zeros((0, self.features))
        squares = Squares(
            seq_ids=np.arange(len(rows), dtype=np.int64),
            points=pad_points(flat, lengths, max(self.lengths)),
            lengths=lengths,
            labels=np.zeros(len(rows), dtype=np.int64),
            classes=self.classes,
        )
        return predict_proba(self.model, LabelledSequences.from_squares(squares)).numpy()

    def _points(self, index: int, row: Any) -> np.ndarray:
        """Row `index`'s points as an (L, F) float64 array, or a one-line refusal."""
        try:
            points = [_point(point, self.features) for point in row]
        except (TypeError, ValueError, KeyError):
            what = "[x, y] pairs of" if self.features == 2 else f"lists of {self.features}"
            raise _refused(f"row {index}: points must be a list of {what} numbers") from None
        if len(points) not in self.lengths:
            expected = f"{self.lengths.start} to {self.lengths.stop - 1}"
            if len(self.lengths) == 1:
                expected = str(self.lengths.start)
            count = f"{len(points)} point{'s' * (len(points) != 1)}"
            raise _refused(
                f"row {index}: {count}; this model was trained on squares of {expected} points"
            )
        array = np.array(points, dtype=np.float64)
        if not np.isfinite(array).all():
            raise _refused(f"row {index}: a coordinate is not a finite number")
        if np.abs(array).max() > self.limit:
            raise _refused(
                f"row {index}: a coordinate beyond ±{self.limit:g}, far outside the squares "
                "this model was trained on"
            )
        return array


def _point(point: Any, features: int) -> tuple[float, ...]:
    """A point given as [x0, ..., x{F-1}] or {"x0": ..., ...}, as floats (ints are welcome)."""
    if isinstance(point, dict):
        point = [point[f"x{axis}"] for axis in range(features)]
    values = list(point)
    if len(values) != features:
        raise ValueError(f"a point has {features} numbers")
    if any(isinstance(value, bool) for value in values):
        raise TypeError("a point's coordinates are numbers")
    return tuple(float(value) for value in values)


def _refused(reason: str) -> MlflowException:
    """A refusal MLflow's scoring server answers with 400 and this line, no stack trace."""
    return MlflowException(reason, error_code=INVALID_PARAMETER_VALUE)


def write_accepts(directory: Path, accepts: dict[str, Any], capability: str) -> None:
    """Record in a model's data folder what it accepts and the CPU kernels it runs."""
    (directory / ACCEPTS_FILE).write_text(
        json.dumps({**accepts, "cpu_capability": capability}, indent=2, sort_keys=True) + "\n"
    )


def load_model_dir(directory: str | Path) -> SquareClassifier:
    """The model in a logged model's data folder (checkpoint + accepts.json), its kernels
    pinned as the stages pin them: its probabilities are the pipeline's, bit for bit.

    In a process where torch already ran other kernels (a notebook), they cannot be pinned
    any more: the model still scores, and a warning says its last bits may differ.
    """
    directory = Path(directory)
    accepts = json.loads((directory / ACCEPTS_FILE).read_text())
    try:
        numerics.configure_torch(accepts["cpu_capability"])  # before torch's first kernel
    except numerics.UnsupportedCapabilityError as error:
        warnings.warn(
            f"cpu_capability {error}: the probabilities may differ in their last bits from "
            "the pipeline's",
            stacklevel=2,
        )
    from pipeline.library.models import load_checkpoint

    return SquareClassifier(load_checkpoint(directory), accepts)


def _load_pyfunc(data_path: str) -> SquareClassifier:
    """MLflow's hook: the pyfunc model for a logged model's data folder."""
    return load_model_dir(data_path)
