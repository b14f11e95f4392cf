"""params.yaml, the user's contract, validated into typed objects.

The file is read exactly as DVC reads it (ruamel.yaml's safe loader: YAML 1.2, duplicate
keys refused), so the values a stage uses are the values `dvc.lock` records. It is parsed
once per process; a mistake anywhere stops the pipeline before anything is written, with
one line that names the key and says what is allowed. Nothing else reads params.yaml.

A model variant's architecture is a `ModelSpec` (pipeline/library/settings.py). Nothing here imports torch, so params are checked before any heavy import.
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

from pipeline.library.errors import ParamsError
from pipeline.library.settings import (
    ARCHS,
    DatasetParams,
    ModelParams,
    ModelSpec,
    SpecError,
    SplitParams,
)

# ---------------------------------------------------------------------------
# The params, as the stages get them.

DEVICES = ("auto", "cpu", "cuda")
#: CPU kernel families torch can be pinned to (see pipeline/library/numerics.py).
CPU_CAPABILITIES = ("default", "avx2", "avx512")
MAX_SEED = 2**32 - 1  # NumPy's legacy generator takes seeds below 2**32
#: Names become file names, stage names and MLflow keys: short, and never an option.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
#: Parquet list offsets are 32-bit: a file holds fewer than 2**31 points, 4 per square.
MAX_SQUARES = 500_000_000
MAX_NOISE = 1e6
#: Adam moves each weight by about lr per step: beyond this nothing is learnt, and from
#: about 1e37 its first step overflows float32.
MAX_LEARNING_RATE = 10.0
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 8  # the contract nests 3 deep; deeper is a mistake, not a setting
#: Each split part must keep at least one square of a dataset: rounding per class can lose
#: one square per part, so fraction x n must reach 2 (see `pipeline.library.split`).
MIN_PART_SHARE = 2


@dataclass(frozen=True)
class Params:
    """The validated params.yaml; `values` keeps the plain values as DVC reads them."""

    datasets: dict[str, DatasetParams]
    split: SplitParams
    models: dict[str, ModelParams]
    device: str
    cpu_capability: str
    values: dict[str, Any]
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
            value: Any = self.values
            for part in key.split("."):
                value = value[part]
            _flatten(key, value, flat)
        return flat


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict):
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
NOISE = _Rule(
    f"a finite number from 0 to {MAX_NOISE:g}", lambda v: _is_number(v) and 0 <= v <= MAX_NOISE
)
FRACTION = _Rule("a number in (0, 1)", lambda v: _is_number(v) and 0 < v < 1)
LEARNING_RATE = _Rule(
    f"a number > 0 and at most {MAX_LEARNING_RATE:g}",
    lambda v: _is_number(v) and 0 < v <= MAX_LEARNING_RATE,
)
NAME = _Rule(
    "a name of 1 to 64 letters, digits, '_' or '-', not starting with '-'",
    lambda v: isinstance(v, str) and NAME_PATTERN.fullmatch(v) is not None,
)


def _one_of(options: tuple[str, ...]) -> _Rule:
    return _Rule(f"one of {', '.join(options)}", lambda v: v in options)


DATASET_RULES = {
    "n": _integer(1, MAX_SQUARES),
    "noise": NOISE,
    "seed": SEED,
    "variable_len": BOOLEAN,
    "shuffle_points": BOOLEAN,
}
SPLIT_RULES = {"seed": SEED, "val": FRACTION, "test": FRACTION}
#: The architecture's rules (ModelSpec's fields, in order), then training's.
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
SPEC_KEYS = tuple(field.name for field in fields(ModelSpec))
TOP_LEVEL_KEYS = ("datasets", "split", "models", "device", "cpu_capability")


# ---------------------------------------------------------------------------
# Loading.


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml; raise ParamsError naming the bad key."""
    path = Path(path)
    return params_from_values(read_yaml(path), path)


def params_from_values(values: Any, source: Path) -> Params:
    """Validate values parsed from `source` (params.yaml) into Params."""
    check = _Checker(source)
    check.keys(values, "", TOP_LEVEL_KEYS)
    datasets = {
        name: DatasetParams(**check.section(section, f"datasets.{name}", DATASET_RULES))
        for name, section in check.named_sections(values["datasets"], "datasets").items()
    }
    split = SplitParams(**check.section(values["split"], "split", SPLIT_RULES))
    models = {
        name: _model_params(check, f"models.{name}", section)
        for name, section in check.named_sections(values["models"], "models").items()
    }
    device = check.value(values["device"], "device", _one_of(DEVICES))
    cpu_capability = check.value(
        values["cpu_capability"], "cpu_capability", _one_of(CPU_CAPABILITIES)
    )
    if Fraction(repr(split.val)) + Fraction(repr(split.test)) >= 1:
        check.fail(
            "split.val + split.test",
            f"must be < 1 (the rest is training), got {split.val} + {split.test}",
        )
    for name, dataset in datasets.items():
        for part in ("val", "test"):
            share = Fraction(repr(getattr(split, part))) * dataset.n
            if share < MIN_PART_SHARE:
                check.fail(
                    f"split.{part}",
                    f"leaves datasets.{name} (n = {dataset.n}) too few squares: {part} x n must "
                    f"be at least {MIN_PART_SHARE}, got {getattr(split, part)} x {dataset.n}",
                )
    for name, model in models.items():
        _check_model_fits_dataset(check, name, model, datasets)
    return Params(datasets, split, models, device, cpu_capability, values, source)


def _model_params(check: "_Checker", key: str, section: Any) -> ModelParams:
    values = check.section(section, key, MODEL_RULES)
    try:
        spec = ModelSpec(**{name: values.pop(name) for name in SPEC_KEYS})
    except SpecError as error:
        check.fail(f"{key}.{error.key}", error.problem)
    return ModelParams(spec=spec, **values)


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
    spec = model.spec
    if spec.arch == "conv1d" and variable_len:
        check.fail(f"{key}.dataset", "must be a fixed-length dataset for arch conv1d")
    if spec.bidirectional and variable_len and not spec.packed:
        # Read from padding, the backward direction would start on zeros.
        check.fail(
            f"{key}.packed",
            f"must be true for a bidirectional model on variable-length dataset {model.dataset!r}",
        )


def read_yaml(path: Path) -> Any:
    """The YAML document in `path`, parsed as DVC parses params files; ParamsError otherwise."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except OSError as error:
        raise ParamsError(f"{path}: cannot read ({error.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ParamsError(f"{path}: larger than {MAX_FILE_BYTES >> 10} KiB; params files are small")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ParamsError(
            f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
        ) from None
    try:
        values = YAML(typ="safe").load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = (error.problem or "syntax error").split("\n")[0]
        raise ParamsError(f"{path}: not valid YAML{where}: {_short(problem)}") from None
    except YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {_short(str(error))}") from None
    except RecursionError:
        raise ParamsError(f"{path}: nested too deeply to read") from None
    _check_depth(values, path)
    return values if values is not None else {}


def _check_depth(values: Any, path: Path) -> None:
    """Refuse nesting deeper than MAX_DEPTH, visiting each shared (aliased) node once."""
    pending, seen = [(values, 0)], set()
    while pending:
        value, depth = pending.pop()
        if not isinstance(value, dict | list) or id(value) in seen:
            continue
        if depth >= MAX_DEPTH:
            raise ParamsError(f"{path}: nested more than {MAX_DEPTH} levels deep")
        seen.add(id(value))
        children = value.values() if isinstance(value, dict) else value
        pending += [(child, depth + 1) for child in children]


def _short(text: str, limit: int = 80) -> str:
    """One line of at most `limit` characters: no value can flood a message."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _describe(value: Any) -> str:
    """A value for a message, bounded: containers by kind, scalars by a short repr."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return _short(repr(value), 40)


class _Checker:
    """Validates parts of the parsed YAML, raising one-line ParamsErrors."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> None:
        raise ParamsError(f"{self.path}: {key} {problem}" if key else f"{self.path}: {problem}")

    def keys(self, mapping: Any, where: str, expected: tuple[str, ...]) -> None:
        if not isinstance(mapping, dict):
            self.fail(where, f"must be a mapping of {', '.join(expected)}")
        prefix = f"{where}." if where else ""
        for key in expected:
            if key not in mapping:
                self.fail(f"{prefix}{key}", "is missing")
        for key in mapping:
            if key not in expected:
                self.fail(
                    f"{prefix}{_short(str(key), 40)}",
                    f"is not a known key (allowed: {', '.join(expected)})",
                )

    def named_sections(self, mapping: Any, where: str) -> dict[str, Any]:
        if not isinstance(mapping, dict) or not mapping:
            self.fail(where, "must be a non-empty mapping of names to settings")
        for name in mapping:
            if not NAME.accepts(name):
                self.fail(f"{where}.{_short(str(name), 70)}", f"must be {NAME.allowed}")
        return mapping

    def value(self, value: Any, key: str, rule: _Rule) -> Any:
        if not rule.accepts(value):
            self.fail(key, f"must be {rule.allowed}, got {_describe(value)}")
        return value

    def section(self, mapping: Any, where: str, rules: dict[str, _Rule]) -> dict[str, Any]:
        self.keys(mapping, where, tuple(rules))
        return {
            key: self.value(mapping[key], f"{where}.{key}", rule) for key, rule in rules.items()
        }
