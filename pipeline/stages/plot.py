"""plot@<model>: the pictures of a trained variant, drawn from its weights.

Recurrent variants: the corners in hidden space, the test hidden states over the
decision boundary step by step, the eight noise-free squares, and the journey of
the hidden state (PNG and GIF). conv1d: its filters and edge features. Variants on
digits: digits as images and as read, the final states' principal plane, per-class
results. All: the loss and accuracy curves.
"""

from pipeline.library.history import FILES as HISTORY_FILES
from pipeline.library.history import read_history
from pipeline.library.models import load_checkpoint, load_spec
from pipeline.library.squares import read_squares
from pipeline.pictures.plots import plot_variant
from pipeline.runtime.declaration import Arg, Stage
from pipeline.runtime.stage import Context
from pipeline.stages import MODEL, TEST

STAGE = Stage(
    name="plot",
    doc=__doc__,
    item="models",
    params=("models.{name}", "cpu_capability"),
    inputs=(
        MODEL,
        TEST,
        Arg("history", "holds loss.csv and accuracy.csv", HISTORY_FILES),
    ),
    outputs=(Arg("plots", "where the pictures go"),),
    uses_torch=True,
)


def run(context: Context) -> None:
    plot_variant(
        context.name,
        load_spec(context.inputs["model"]),
        load_checkpoint(context.inputs["model"]),
        read_squares(context.inputs["test"]),
        read_history(context.inputs["history"]),
        context.outputs["plots"],
    )
