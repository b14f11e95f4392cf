"""padding: every packed variant beside its padded twin, one short test square through both.

A padded twin has every setting of a packed variant but `packed: false`: its batches are
padded, not packed, and it is read at the padded end. For each such pair in params.yaml
(lstm_packed and lstm_padded), <padded twin>/padding.png follows the first of the shortest
test squares through both, step by step, with each variant's test accuracy (see
docs/pictures.md). With no pair, the folder stays empty.
"""

from pipeline.library.errors import InputError
from pipeline.library.models import CONFIG_FILE, RecurrentClassifier, load_checkpoint
from pipeline.library.squares import read_squares
from pipeline.pictures.padding_space import padding_pairs
from pipeline.pictures.plots import plot_padding
from pipeline.runtime.declaration import Arg, Stage
from pipeline.runtime.stage import Context

STAGE = Stage(
    name="padding",
    doc=__doc__,
    item=None,
    params=("models", "cpu_capability"),
    inputs=(
        Arg("models", "holds <model>/weights.pt and config.json per variant"),
        Arg("splits", "holds <dataset>/test.parquet per dataset"),
    ),
    outputs=(Arg("padding", "where <padded twin>/padding.png goes, per pair"),),
    uses_torch=True,
)


def run(context: Context) -> None:
    models, directory = context.params.models, context.outputs["padding"]
    directory.mkdir(parents=True, exist_ok=True)
    for packed, padded in padding_pairs(models):
        loaded = {}
        for name in (packed, padded):
            model = load_checkpoint(context.inputs["models"] / name)
            if not isinstance(model, RecurrentClassifier) or model.packed != (name == packed):
                config = context.inputs["models"] / name / CONFIG_FILE
                raise InputError(f"{config}: not the model params.yaml describes (retrain it)")
            loaded[name] = model
        test_file = context.inputs["splits"] / models[packed].dataset / "test.parquet"
        test = read_squares(test_file)
        if not (test.lengths < test.points.shape[1]).any():
            raise InputError(f"{test_file}: holds no square shorter than its longest")
        plot_padding((packed, loaded[packed]), (padded, loaded[padded]), test, directory / padded)
