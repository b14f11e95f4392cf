"""params.yaml, the user's contract, validated into typed objects.

Every stage loads the whole file through `load_params`, so a mistake anywhere
stops the pipeline before anything is written, with one line that names the
key and says what is allowed. Nothing else in the project reads params.yaml.
"""

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ParamsError

ARCHS = ("rnn", "gru", "lstm", "conv1d")
DEVICES = ("auto", "cpu", "cuda")
MAX_SEED = 2**32 - 1  # NumPy's legacy generator takes seeds below 2**32
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]+")  # names become file names and stage names


@dataclass(frozen=True)
class DatasetParams:
    """How one dataset of squares is drawn (`datasets.<name>`)."""

    n: int
    noise: float
    seed: int
    variable_len: bool
    shuffle_points: bool


@dataclass(frozen=True)
class SplitParams:
    """Fractions held out for validation and test (`split`); the rest trains."""

    seed: int
    val: float
    test: float


@dataclass(frozen=True)
class ModelParams:
    """Everything one model variant needs (`models.<name>`)."""

    arch: str
    dataset: str
    hidden_dim: int
    num_layers: int
    bidirectional: bool
    packed: bool
    epochs: int
    batch_size: int
    lr: float
    seed: int
    shuffle_seed: int


@dataclass(frozen=True)
class Params:
    """The validated params.yaml; `raw` keeps the values as DVC reads them."""

    datasets: dict[str, DatasetParams]
    split: SplitParams
    models: dict[str, ModelParams]
    device: str
    raw: dict[str, Any]
    source: Path

    def dataset(self, name: str) -> DatasetParams:
        """The params of dataset `name`; ParamsError if params.yaml has none."""
        if name not in self.datasets:
            raise ParamsError(f"{self.source}: datasets.{name} is missing")
        return self.datasets[name]

    def model(self, name: str) -> ModelParams:
        """The params of model variant `name`; ParamsError if params.yaml has none."""
        if name not in self.models:
            raise ParamsError(f"{self.source}: models.{name} is missing")
        return self.models[name]

    def tracked(self, *keys: str) -> dict[str, Any]:
        """The scalar params under dotted `keys`, flattened to dotted names.

        These are exactly the values DVC records for a stage that lists `keys`
        under `params:` in dvc.yaml.
        """
        flat: dict[str, Any] = {}
        for key in keys:
            value: Any = self.raw
            for part in key.split("."):
                value = value[part]
            _flatten(key, value, flat)
        return flat


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, into)
    else:
        into[prefix] = value


# ---------------------------------------------------------------------------
# Rules: what each key accepts, in words a user reads in the error message.


@dataclass(frozen=True)
class _Rule:
    allowed: str
    accepts: Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(low: int, high: int | None = None) -> _Rule:
    allowed = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    return _Rule(allowed, lambda v: _is_int(v) and v >= low and (high is None or v <= high))


BOOLEAN = _Rule("true or false", lambda v: isinstance(v, bool))
SEED = _integer(0, MAX_SEED)
POSITIVE = _integer(1)
NOISE = _Rule("a finite number >= 0", lambda v: _is_number(v) and v >= 0)
FRACTION = _Rule("a number in [0, 1)", lambda v: _is_number(v) and 0 <= v < 1)
LEARNING_RATE = _Rule("a finite number > 0", lambda v: _is_number(v) and v > 0)
NAME = _Rule("a name of letters, digits, '_' or '-'", lambda v: isinstance(v, str))


def _one_of(options: tuple[str, ...]) -> _Rule:
    return _Rule(f"one of {', '.join(options)}", lambda v: v in options)


DATASET_RULES = {
    "n": POSITIVE,
    "noise": NOISE,
    "seed": SEED,
    "variable_len": BOOLEAN,
    "shuffle_points": BOOLEAN,
}
SPLIT_RULES = {"seed": SEED, "val": FRACTION, "test": FRACTION}
MODEL_RULES = {
    "arch": _one_of(ARCHS),
    "dataset": NAME,
    "hidden_dim": POSITIVE,
    "num_layers": POSITIVE,
    "bidirectional": BOOLEAN,
    "packed": BOOLEAN,
    "epochs": POSITIVE,
    "batch_size": POSITIVE,
    "lr": LEARNING_RATE,
    "seed": SEED,
    "shuffle_seed": SEED,
}
TOP_LEVEL_KEYS = ("datasets", "split", "models", "device")


# ---------------------------------------------------------------------------
# Loading.


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml; raise ParamsError naming the bad key."""
    path = Path(path)
    raw = _read_yaml(path)
    check = _Checker(path)
    check.keys(raw, "", TOP_LEVEL_KEYS)

    datasets = {
        name: DatasetParams(**check.section(section, f"datasets.{name}", DATASET_RULES))
        for name, section in check.named_sections(raw["datasets"], "datasets").items()
    }
    split = SplitParams(**check.section(raw["split"], "split", SPLIT_RULES))
    models = {
        name: ModelParams(**check.section(section, f"models.{name}", MODEL_RULES))
        for name, section in check.named_sections(raw["models"], "models").items()
    }
    device = check.value(raw["device"], "device", _one_of(DEVICES))

    if split.val + split.test >= 1:
        check.fail(
            "split.val + split.test",
            f"must be < 1 (the rest is training), got {split.val} + {split.test}",
        )
    for name, model in models.items():
        _check_model_fits_dataset(check, name, model, datasets)
    return Params(datasets, split, models, device, raw, path)


def _check_model_fits_dataset(
    check: "_Checker", name: str, model: ModelParams, datasets: dict[str, DatasetParams]
) -> None:
    key = f"models.{name}"
    if model.dataset not in datasets:
        known = ", ".join(datasets)
        check.fail(
            f"{key}.dataset", f"must name a key of datasets ({known}), got {model.dataset!r}"
        )
    variable_len = datasets[model.dataset].variable_len
    if model.arch == "conv1d":
        if variable_len:
            check.fail(f"{key}.dataset", "must be a fixed-length dataset for arch conv1d")
        for flag, allowed in (("num_layers", 1), ("bidirectional", False), ("packed", False)):
            if getattr(model, flag) != allowed:
                check.fail(f"{key}.{flag}", f"must be {str(allowed).lower()} for arch conv1d")
    elif model.bidirectional and variable_len and not model.packed:
        # Read from padding, the backward direction would start on zeros.
        check.fail(
            f"{key}.packed",
            f"must be true for a bidirectional model on variable-length dataset {model.dataset!r}",
        )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except OSError as error:
        raise ParamsError(f"{path}: cannot read ({error.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "syntax error"
        raise ParamsError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: must be a mapping of {', '.join(TOP_LEVEL_KEYS)}")
    return raw


class _Checker:
    """Validates parts of the raw YAML, raising one-line ParamsErrors."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> None:
        raise ParamsError(f"{self.path}: {key} {problem}")

    def keys(self, mapping: Any, where: str, expected: tuple[str, ...]) -> None:
        if not isinstance(mapping, dict):
            self.fail(where, f"must be a mapping of {', '.join(expected)}")
        prefix = f"{where}." if where else ""
        for key in expected:
            if key not in mapping:
                self.fail(f"{prefix}{key}", "is missing")
        for key in mapping:
            if key not in expected:
                self.fail(f"{prefix}{key}", f"is not a known key (allowed: {', '.join(expected)})")

    def named_sections(self, mapping: Any, where: str) -> dict[str, Any]:
        if not isinstance(mapping, dict) or not mapping:
            self.fail(where, "must be a non-empty mapping of names to settings")
        for name in mapping:
            if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
                self.fail(f"{where}.{name}", f"must be {NAME.allowed}")
        return mapping

    def value(self, value: Any, key: str, rule: _Rule) -> Any:
        if not rule.accepts(value):
            self.fail(key, f"must be {rule.allowed}, got {value!r}")
        return value

    def section(self, mapping: Any, where: str, rules: dict[str, _Rule]) -> dict[str, Any]:
        self.keys(mapping, where, tuple(rules))
        return {
            key: self.value(mapping[key], f"{where}.{key}", rule) for key, rule in rules.items()
        }
