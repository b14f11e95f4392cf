"""params.yaml validation: the shipped file is valid, every mistake gets one clear line."""

from pathlib import Path

import pytest
import yaml
from params_editing import drop_key, set_key

from pipeline.errors import ParamsError
from pipeline.params import load_params

REPO = Path(__file__).resolve().parents[1]
SHIPPED = yaml.safe_load((REPO / "params.yaml").read_text())


def write_params(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_shipped_params_are_valid_and_typed():
    params = load_params(REPO / "params.yaml")
    assert {"fixed", "variable", "fixed_shuffled"} <= set(params.datasets)
    assert params.datasets["variable"].variable_len is True
    assert all(model.dataset in params.datasets for model in params.models.values())


def test_tracked_flattens_sections_to_dvc_dotted_names():
    params = load_params(REPO / "params.yaml")
    tracked = params.tracked("datasets.fixed", "device")
    assert tracked == {
        "datasets.fixed.n": SHIPPED["datasets"]["fixed"]["n"],
        "datasets.fixed.noise": SHIPPED["datasets"]["fixed"]["noise"],
        "datasets.fixed.seed": SHIPPED["datasets"]["fixed"]["seed"],
        "datasets.fixed.variable_len": False,
        "datasets.fixed.shuffle_points": False,
        "device": SHIPPED["device"],
    }


MODEL = next(iter(SHIPPED["models"]))

BAD_PARAMS = [
    (drop_key(SHIPPED, "split"), "split is missing"),
    (drop_key(SHIPPED, "datasets.fixed.seed"), "datasets.fixed.seed is missing"),
    (
        set_key(SHIPPED, "datasets.fixed.n", "many"),
        "datasets.fixed.n must be an integer >= 1, got 'many'",
    ),
    (set_key(SHIPPED, "datasets.fixed.n", 0), "datasets.fixed.n must be an integer >= 1, got 0"),
    (set_key(SHIPPED, "datasets.fixed.n", -5), "datasets.fixed.n must be an integer >= 1, got -5"),
    (
        set_key(SHIPPED, "datasets.fixed.n", 10.5),
        "datasets.fixed.n must be an integer >= 1, got 10.5",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.noise", -0.1),
        "datasets.fixed.noise must be a finite number >= 0, got -0.1",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.noise", float("nan")),
        "datasets.fixed.noise must be a finite number >= 0, got nan",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.noise", float("inf")),
        "datasets.fixed.noise must be a finite number >= 0, got inf",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.variable_len", "yes"),
        "datasets.fixed.variable_len must be true or false, got 'yes'",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.seed", 2**32),
        "datasets.fixed.seed must be an integer from 0 to 4294967295, got 4294967296",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.seed", True),
        "datasets.fixed.seed must be an integer from 0 to 4294967295, got True",
    ),
    (set_key(SHIPPED, "split.val", 1.0), "split.val must be a number in [0, 1), got 1.0"),
    (set_key(SHIPPED, "split.test", -0.2), "split.test must be a number in [0, 1), got -0.2"),
    (
        set_key(SHIPPED, "split.val", 0.8),
        "split.val + split.test must be < 1 (the rest is training), got 0.8 + 0.2",
    ),
    (
        set_key(SHIPPED, f"models.{MODEL}.arch", "transformer"),
        f"models.{MODEL}.arch must be one of rnn, gru, lstm, conv1d, got 'transformer'",
    ),
    (
        set_key(SHIPPED, f"models.{MODEL}.dataset", "nowhere"),
        f"models.{MODEL}.dataset must name a key of datasets (fixed, variable, fixed_shuffled), got 'nowhere'",
    ),
    (
        set_key(SHIPPED, f"models.{MODEL}.hidden_dim", 0),
        f"models.{MODEL}.hidden_dim must be an integer >= 1, got 0",
    ),
    (
        set_key(SHIPPED, f"models.{MODEL}.epochs", 0),
        f"models.{MODEL}.epochs must be an integer >= 1, got 0",
    ),
    (
        set_key(SHIPPED, f"models.{MODEL}.batch_size", -16),
        f"models.{MODEL}.batch_size must be an integer >= 1, got -16",
    ),
    (
        set_key(SHIPPED, f"models.{MODEL}.lr", 0),
        f"models.{MODEL}.lr must be a finite number > 0, got 0",
    ),
    (
        set_key(SHIPPED, f"models.{MODEL}.learning_rate", 0.1),
        f"models.{MODEL}.learning_rate is not a known key (allowed: arch, dataset, hidden_dim, num_layers, bidirectional, packed, epochs, batch_size, lr, seed, shuffle_seed)",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.nosie", 0.1),
        "datasets.fixed.nosie is not a known key (allowed: n, noise, seed, variable_len, shuffle_points)",
    ),
    (
        set_key(SHIPPED, "epochs", 10),
        "epochs is not a known key (allowed: datasets, split, models, device)",
    ),
    (set_key(SHIPPED, "device", "tpu"), "device must be one of auto, cpu, cuda, got 'tpu'"),
    (set_key(SHIPPED, "models", {}), "models must be a non-empty mapping of names to settings"),
    (
        set_key(SHIPPED, "datasets", ["fixed"]),
        "datasets must be a non-empty mapping of names to settings",
    ),
    (
        set_key(SHIPPED, "datasets.fixed", 3),
        "datasets.fixed must be a mapping of n, noise, seed, variable_len, shuffle_points",
    ),
    (
        set_key(SHIPPED, "models.my model", SHIPPED["models"][MODEL]),
        "models.my model must be a name of letters, digits, '_' or '-'",
    ),
]


@pytest.mark.parametrize(("params", "message"), BAD_PARAMS, ids=[m for _, m in BAD_PARAMS])
def test_each_mistake_is_one_line_naming_the_key(tmp_path, params, message):
    path = write_params(tmp_path, params)
    with pytest.raises(ParamsError) as raised:
        load_params(path)
    assert str(raised.value) == f"{path}: {message}"
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {"arch": "conv1d", "dataset": "variable"},
            "models.m.dataset must be a fixed-length dataset for arch conv1d",
        ),
        ({"arch": "conv1d", "num_layers": 2}, "models.m.num_layers must be 1 for arch conv1d"),
        (
            {"arch": "conv1d", "bidirectional": True},
            "models.m.bidirectional must be false for arch conv1d",
        ),
        (
            {"arch": "lstm", "dataset": "variable", "bidirectional": True},
            "models.m.packed must be true for a bidirectional model on variable-length dataset 'variable'",
        ),
    ],
)
def test_models_must_fit_their_dataset(tmp_path, model, message):
    base = {**SHIPPED["models"][MODEL], "packed": False, "bidirectional": False, "num_layers": 1}
    path = write_params(tmp_path, set_key(SHIPPED, "models", {"m": {**base, **model}}))
    with pytest.raises(ParamsError, match=f"^{path}: {message}$"):
        load_params(path)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("split:\n  seed: [1, 2\n")
    with pytest.raises(ParamsError, match=rf"^{path}: not valid YAML at line \d+, column \d+: "):
        load_params(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ParamsError, match=r"params\.yaml: file not found$"):
        load_params(tmp_path / "params.yaml")


def test_empty_file_is_not_a_mapping(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("")
    with pytest.raises(ParamsError, match="must be a mapping of datasets, split, models, device"):
        load_params(path)


def test_unknown_dataset_or_model_name_is_reported(tmp_path):
    params = load_params(write_params(tmp_path, SHIPPED))
    with pytest.raises(ParamsError, match=r"datasets\.circles is missing"):
        params.dataset("circles")
    with pytest.raises(ParamsError, match=r"models\.transformer is missing"):
        params.model("transformer")
