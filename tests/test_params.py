"""params.yaml validation: the shipped file is valid, every mistake gets one clear line."""

import re
from pathlib import Path

import pytest
import yaml
from params_editing import drop_key, set_key
from pydantic import ValidationError

from pipeline.library.errors import ParamsError
from pipeline.library.settings import SQUARES_SHAPE, ModelSpec, SpecError
from pipeline.runtime.params import load_params

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
NAME_RULE = "a name of 1 to 64 letters, digits, '_' or '-', not starting with '-'"

BAD_PARAMS = [
    (drop_key(SHIPPED, "split"), "split is missing"),
    # Digits: a kind or a reading order that does not exist, a model that cannot fit them.
    (
        set_key(SHIPPED, "datasets.digits_rows.kind", "letters"),
        "datasets.digits_rows.kind must be one of squares, digits, got 'letters'",
    ),
    (
        set_key(SHIPPED, "datasets.digits_rows.order", "columns"),
        "datasets.digits_rows.order must be one of rows, pixels, pixels_permuted, "
        "pixels_shuffled, got 'columns'",
    ),
    (
        set_key(SHIPPED, "datasets.digits_rows.noise", 0.1),
        "datasets.digits_rows.noise is not a known key (allowed: kind, order, seed)",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.order", "rows"),
        "datasets.fixed.order is not a known key (allowed: kind, n, noise, seed, variable_len, "
        "shuffle_points)",
    ),
    (
        set_key(SHIPPED, "models.digits_conv1d_rows.kernel_size", 9),
        "models.digits_conv1d_rows.kernel_size must be at most the 8 steps of dataset "
        "'digits_rows', got 9",
    ),
    (
        set_key(SHIPPED, "models.digits_gru_rows.kernel_size", 3),
        "models.digits_gru_rows.kernel_size is for arch conv1d only",
    ),
    (
        set_key(SHIPPED, "models.digits_gru_pixels.packed", True),
        "models.digits_gru_pixels.packed must be false on fixed-length dataset 'digits_pixels' "
        "(every sequence has 64 steps: nothing to pack)",
    ),
    (drop_key(SHIPPED, "datasets.fixed.seed"), "datasets.fixed.seed is missing"),
    (
        set_key(SHIPPED, "datasets.fixed.n", "many"),
        "datasets.fixed.n must be an integer from 1 to 500000000, got 'many'",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.n", 0),
        "datasets.fixed.n must be an integer from 1 to 500000000, got 0",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.n", 10.5),
        "datasets.fixed.n must be an integer from 1 to 500000000, got 10.5",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.noise", -0.1),
        "datasets.fixed.noise must be a finite number from 0 to 1e+06, got -0.1",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.noise", float("nan")),
        "datasets.fixed.noise must be a finite number from 0 to 1e+06, got nan",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.noise", float("inf")),
        "datasets.fixed.noise must be a finite number from 0 to 1e+06, got inf",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.noise", 1.0e308),
        "datasets.fixed.noise must be a finite number from 0 to 1e+06, got 1e+308",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.n", 10_000_000_000),
        "datasets.fixed.n must be an integer from 1 to 500000000, got 10000000000",
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
    (set_key(SHIPPED, "split.val", 1.0), "split.val must be a number in (0, 1), got 1.0"),
    (set_key(SHIPPED, "split.test", -0.2), "split.test must be a number in (0, 1), got -0.2"),
    (set_key(SHIPPED, "split.val", 0.0), "split.val must be a number in (0, 1), got 0.0"),
    (
        set_key(SHIPPED, "datasets.fixed.n", 9),
        "split.val leaves datasets.fixed (n = 9) too few squares: val x n must be at least 2, "
        "got 0.2 x 9",
    ),
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
        f"models.{MODEL}.dataset must name a key of datasets ({', '.join(SHIPPED['datasets'])}), got 'nowhere'",
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
        f"models.{MODEL}.lr must be a number > 0 and at most 10, got 0",
    ),
    (
        set_key(SHIPPED, f"models.{MODEL}.lr", 1e30),
        f"models.{MODEL}.lr must be a number > 0 and at most 10, got 1e+30",
    ),
    (
        set_key(SHIPPED, f"models.{MODEL}.learning_rate", 0.1),
        f"models.{MODEL}.learning_rate is not a known key (allowed: arch, dataset, hidden_dim, num_layers, bidirectional, packed, kernel_size, epochs, batch_size, lr, seed, shuffle_seed)",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.nosie", 0.1),
        "datasets.fixed.nosie is not a known key (allowed: kind, n, noise, seed, variable_len, shuffle_points)",
    ),
    (
        set_key(SHIPPED, "epochs", 10),
        "epochs is not a known key (allowed: datasets, split, models, device, cpu_capability)",
    ),
    (set_key(SHIPPED, "device", "tpu"), "device must be one of auto, cpu, cuda, got 'tpu'"),
    (
        set_key(SHIPPED, "cpu_capability", "sse"),
        "cpu_capability must be one of default, avx2, avx512, got 'sse'",
    ),
    (drop_key(SHIPPED, "cpu_capability"), "cpu_capability is missing"),
    (set_key(SHIPPED, "models", {}), "models must be a non-empty mapping of names to settings"),
    (
        set_key(SHIPPED, "datasets", ["fixed"]),
        "datasets must be a non-empty mapping of names to settings",
    ),
    (
        set_key(SHIPPED, "datasets.fixed", 3),
        "datasets.fixed must be a mapping of kind, n, noise, seed, variable_len, shuffle_points",
    ),
    (
        set_key(SHIPPED, "models.my model", SHIPPED["models"][MODEL]),
        f"models.my model must be {NAME_RULE}",
    ),
    (set_key(SHIPPED, "models.-gru", SHIPPED["models"][MODEL]), f"models.-gru must be {NAME_RULE}"),
    (
        set_key(SHIPPED, "models." + "m" * 65, SHIPPED["models"][MODEL]),
        f"models.{'m' * 65} must be {NAME_RULE}",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.seed", {"a": [1, 2, 3] * 1000}),
        "datasets.fixed.seed must be an integer from 0 to 4294967295, got a mapping",
    ),
    # Strict: a YAML string is no number, true no integer, 2.0 no integer, 1 no boolean.
    (
        set_key(SHIPPED, "datasets.fixed.noise", "0.1"),
        "datasets.fixed.noise must be a finite number from 0 to 1e+06, got '0.1'",
    ),
    (
        set_key(SHIPPED, f"models.{MODEL}.epochs", True),
        f"models.{MODEL}.epochs must be an integer >= 1, got True",
    ),
    (
        set_key(SHIPPED, f"models.{MODEL}.hidden_dim", 2.0),
        f"models.{MODEL}.hidden_dim must be an integer >= 1, got 2.0",
    ),
    (
        set_key(SHIPPED, f"models.{MODEL}.bidirectional", 1),
        f"models.{MODEL}.bidirectional must be true or false, got 1",
    ),
    (
        set_key(SHIPPED, "datasets.fixed.7", 1),
        "datasets.fixed.7 is not a known key (allowed: kind, n, noise, seed, variable_len, shuffle_points)",
    ),
    (
        {**SHIPPED, 7: 1},
        "7 is not a known key (allowed: datasets, split, models, device, cpu_capability)",
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
    ("edits", "message"),
    [
        # Within a section, an unknown key (a typo) comes before a value refused...
        (
            {f"models.{MODEL}.epochs": 0, f"models.{MODEL}.learning_rate": 0.1},
            f"models.{MODEL}.learning_rate is not a known key",
        ),
        # ...and a missing key (None: dropped) before both: here a section of the file.
        ({"datasets.fixed.n": 0, "device": None}, "device is missing"),
        # A section's names come before what they name.
        (
            {"datasets.fixed.n": 0, "datasets.-x": SHIPPED["datasets"]["fixed"]},
            "datasets.-x must be",
        ),
        # Otherwise params.yaml's order: datasets, split, models, device, cpu_capability.
        ({"device": "tpu", "split.seed": -1}, "split.seed must be"),
    ],
)
def test_of_several_mistakes_the_one_to_fix_first_is_named(tmp_path, edits, message):
    params = SHIPPED
    for key, value in edits.items():
        params = drop_key(params, key) if value is None else set_key(params, key, value)
    path = write_params(tmp_path, params)
    with pytest.raises(ParamsError, match=f"^{re.escape(f'{path}: {message}')}"):
        load_params(path)


def test_values_keep_their_yaml_types_as_dvc_records_them(tmp_path):
    params = set_key(set_key(SHIPPED, "datasets.fixed.noise", 1), f"models.{MODEL}.lr", 1)
    loaded = load_params(write_params(tmp_path, params))
    assert type(loaded.datasets["fixed"].noise) is int
    assert type(loaded.models[MODEL].lr) is int
    assert type(loaded.datasets["variable"].noise) is float
    assert type(loaded.tracked("datasets.fixed")["datasets.fixed.noise"]) is int


def test_a_variants_settings_are_its_architecture_then_its_training():
    model = load_params(REPO / "params.yaml").models[MODEL]
    architecture = ["arch", "hidden_dim", "num_layers", "bidirectional", "packed"]
    training = ["dataset", "epochs", "batch_size", "lr", "seed", "shuffle_seed"]
    assert list(model.settings()) == architecture + training
    assert model.settings() == SHIPPED["models"][MODEL]
    assert model.spec(SQUARES_SHAPE).to_dict() == {
        key: SHIPPED["models"][MODEL][key] for key in architecture
    }


def test_a_model_spec_is_built_by_position_or_by_name_and_refused_naming_the_field():
    spec = ModelSpec("lstm", 2, 1, True, True)
    assert spec == ModelSpec(
        arch="lstm", hidden_dim=2, num_layers=1, bidirectional=True, packed=True
    )
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(SpecError, match=r"^hidden_dim must be an integer >= 1, got 2\.0$"):
        ModelSpec("gru", 2.0, 1, False, False)
    with pytest.raises(SpecError, match=r"^packed must be false for arch conv1d$"):
        ModelSpec("conv1d", 2, 1, False, True)
    with pytest.raises(SpecError, match=r"^config must have the keys arch, hidden_dim, "):
        ModelSpec.from_dict({**spec.to_dict(), "dropout": 0.5})
    with pytest.raises(ValidationError, match="frozen"):
        spec.hidden_dim = 3


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
            {"arch": "lstm", "dataset": "fixed", "packed": True},
            r"models.m.packed must be false on fixed-length dataset 'fixed' "
            r"\(every sequence has 4 steps: nothing to pack\)",
        ),
    ],
)
def test_models_must_fit_their_dataset(tmp_path, model, message):
    base = {**SHIPPED["models"][MODEL], "packed": False, "bidirectional": False, "num_layers": 1}
    path = write_params(tmp_path, set_key(SHIPPED, "models", {"m": {**base, **model}}))
    with pytest.raises(ParamsError, match=f"^{path}: {message}$"):
        load_params(path)


def test_a_bidirectional_model_may_be_padded_without_packing_on_variable_lengths(tmp_path):
    """lstm_padded: padding without packing is a variant to compare, not a mistake."""
    padded = {**SHIPPED["models"]["lstm_packed"], "packed": False}
    path = write_params(tmp_path, set_key(SHIPPED, "models", {"m": padded}))

    assert load_params(path).models["m"].packed is False


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("split:\n  seed: [1, 2\n")
    with pytest.raises(ParamsError, match=rf"^{path}: not valid YAML at line \d+, column \d+: "):
        load_params(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ParamsError, match=r"params\.yaml: file not found$"):
        load_params(tmp_path / "params.yaml")


def test_an_empty_file_misses_the_first_section_and_a_list_is_not_a_mapping(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("")
    with pytest.raises(ParamsError, match=f"^{path}: datasets is missing$"):
        load_params(path)
    path.write_text("- datasets\n")
    with pytest.raises(ParamsError, match=f"^{path}: must be a mapping of datasets, split, "):
        load_params(path)


SHIPPED_TEXT = (REPO / "params.yaml").read_text()


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        # YAML 1.2, as DVC reads it: a leading zero is decimal, not octal (PyYAML: 8)
        ("n: 1024\n    noise: 0.1\n    seed: 13", "n: 010\n    noise: 0.1\n    seed: 13", None),
        # 17:04 is a string in YAML 1.2 (PyYAML: the sexagesimal 1024)
        (
            "n: 1024\n    noise: 0.1\n    seed: 13",
            "n: 17:04\n    noise: 0.1\n    seed: 13",
            "datasets.fixed.n must be an integer from 1 to 500000000, got '17:04'",
        ),
        # `no` is a string in YAML 1.2 (PyYAML: False)
        (
            "variable_len: false\n    shuffle_points: false\n  variable",
            "variable_len: no\n    shuffle_points: false\n  variable",
            "datasets.fixed.variable_len must be true or false, got 'no'",
        ),
    ],
)
def test_values_are_read_as_yaml_1_2_like_dvc(tmp_path, replace, by, message):
    assert replace in SHIPPED_TEXT
    path = tmp_path / "params.yaml"
    path.write_text(SHIPPED_TEXT.replace(replace, by, 1))
    if message is None:
        assert load_params(path).datasets["fixed"].n == 10
    else:
        with pytest.raises(ParamsError, match=f"^{path}: {message}$"):
            load_params(path)


def test_1e_minus_3_is_a_number_as_in_dvc(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(SHIPPED_TEXT.replace("lr: 0.01", "lr: 1e-3", 1))
    assert load_params(path).models[MODEL].lr == 0.001


def test_our_reading_equals_dvcs_own(tmp_path):
    from dvc.utils.serialize import parse_yaml

    from pipeline.runtime.params import read_yaml

    text = "a: 010\nb: 17:04\nc: no\nd: 1e-3\ne: 0o17\nf: .inf\ng: ~\n"
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert read_yaml(path) == parse_yaml(text, str(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"split:\n  seed: 1\n  seed: 2\n",
            r"not valid YAML at line 3, column 3: found duplicate key",
        ),
        (b"device: cpu\xff\n", r"not UTF-8 text \(byte 0xff at offset 11\)"),
        (
            b"a: " + b"[" * 20_000 + b"]" * 20_000 + b"\n",
            r"(nested too deeply to read|nested more than 8 levels deep)",
        ),
        (b"a: [[[[[[[[[[1]]]]]]]]]]\n", r"nested more than 8 levels deep"),
        (b"# " + b"x" * (1 << 20) + b"\n", r"larger than 1024 KiB"),
    ],
)
def test_hostile_files_get_one_line(tmp_path, content, message):
    path = tmp_path / "params.yaml"
    path.write_bytes(content)
    with pytest.raises(ParamsError) as raised:
        load_params(path)
    assert "\n" not in str(raised.value)
    assert re.match(f"^{re.escape(str(path))}: {message}", str(raised.value))


def test_an_alias_bomb_is_refused_without_expanding_it(tmp_path):
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = tmp_path / "params.yaml"
    path.write_text(SHIPPED_TEXT.replace("seed: 42", "seed: *a8", 1) + "\n".join(levels) + "\n")
    with pytest.raises(ParamsError) as raised:
        load_params(path)
    assert len(str(raised.value)) < 200


def test_unknown_dataset_or_model_name_is_reported(tmp_path):
    params = load_params(write_params(tmp_path, SHIPPED))
    with pytest.raises(ParamsError, match=r"datasets\.circles is missing"):
        params.dataset("circles")
    with pytest.raises(ParamsError, match=r"models\.transformer is missing"):
        params.model("transformer")
