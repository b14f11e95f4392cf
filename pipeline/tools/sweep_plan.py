"""A sweep file (sweeps/*.yaml) and its points: the experiments it asks DVC for.

A sweep file names one params.yaml key and its values, the variants, the model seeds, and
settings held fixed for the whole sweep. Each (value, seed) is a point: one DVC experiment,
named `<sweep>-<value>-seed-<seed>`, whose `-S` overrides set the key, every variant's seed
and the fixed settings. The file is checked with the types params.yaml is checked with
(pipeline/library/settings.py), and every point's params with params.yaml's own checks.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from pipeline.library.errors import ParamsError, PipelineError
from pipeline.library.settings import (
    MAX_SEED,
    FiniteNumber,
    Seed,
    Settings,
    at_key,
    describe,
    must_be,
    problem_with,
)
from pipeline.runtime.params import params_from_values, read_yaml

SUMMARY_ROOT = Path("data/sweeps")


class SweepError(PipelineError):
    """A sweep file breaks the contract, or DVC refuses a step: one line for a person."""


@dataclass(frozen=True)
class Point:
    """One experiment of a sweep: a value of the swept param, one model seed, and every
    params.yaml key it sets (dotted key -> value, in the order `-S` gives them)."""

    name: str
    value: float
    seed: int
    overrides: dict[str, Any]

    def set_params(self) -> list[str]:
        """`-S key=value` for each override, values as YAML scalars (DVC parses them so)."""
        return [
            word
            for key, value in self.overrides.items()
            for word in ("-S", f"{key}={json.dumps(value)}")
        ]


def format_value(value: float) -> str:
    """A swept value as experiment names show it: 0.1, 1.0, 128 (Python's shortest repr)."""
    return repr(value)


def experiment_name(sweep_name: str, value: float, seed: int) -> str:
    return f"{sweep_name}-{format_value(value)}-seed-{seed}"


def lookup(values: dict[str, Any], key: str) -> Any:
    """The value at a dotted key of nested mappings; KeyError if there is none."""
    for part in key.split("."):
        if not isinstance(values, dict) or part not in values:
            raise KeyError(key)
        values = values[part]
    return values


def apply_overrides(params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of `params` with each dotted key set, as `dvc exp run -S` sets params.yaml."""
    result = json.loads(json.dumps(params))
    for key, value in overrides.items():
        *parents, last = key.split(".")
        lookup(result, ".".join(parents))[last] = value
    return result


def _is_scalar_key(params: dict[str, Any], key: str) -> bool:
    try:
        value = lookup(params, key)
    except KeyError:
        return False
    return not isinstance(value, dict | list)


# ---------------------------------------------------------------------------
# The file's checks. The validation context is params.yaml's values; a check refuses with
# any error, and its type's `must_be` words the refusal.


def _a_scalar_key(key: str, info: ValidationInfo) -> str:
    if not _is_scalar_key(info.context, key):
        raise ValueError(key)
    return key


def _a_variant(name: str, info: ValidationInfo) -> str:
    models = info.context.get("models") if isinstance(info.context, dict) else None
    if not isinstance(models, dict) or name not in models:
        raise ValueError(name)
    return name


def _a_setting_of_every_variant(key: str, info: ValidationInfo) -> str:
    variants = info.data.get("variants", ())  # absent if refused: that error comes first
    if key == "seed" or not all(
        _is_scalar_key(info.context, f"models.{v}.{key}") for v in variants
    ):
        raise ValueError(key)
    return key


def _distinct_list(plural: str) -> WrapValidator:
    """A non-empty YAML list of distinct items, each checked by the item type, kept as a
    tuple; refused in words that name the items (`plural`: "finite numbers")."""

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> tuple[Any, ...]:
        if not isinstance(value, list) or not value:
            raise PydanticCustomError(
                "list_of", "must be a non-empty list of {plural}", {"plural": plural}
            )
        try:
            items = handler(tuple(value))
        except ValidationError as error:
            got = describe(error.errors()[0]["input"])
            raise PydanticCustomError(
                "list_item", "must be {plural}, got {got}", {"plural": plural, "got": got}
            ) from None
        if len(set(items)) != len(items):
            raise PydanticCustomError("list_repeat", "must not repeat a value")
        return items

    return WrapValidator(check)


def _mapping_of_settings(value: Any, handler: ValidatorFunctionWrapHandler) -> dict[str, Any]:
    """An optional mapping (absent or empty: no settings); its keys and values are checked
    by their types, each error at its key."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PydanticCustomError("settings", "must be a mapping of settings")
    return handler(value)


#: Experiment names are `<sweep>-<value>-seed-<seed>`: git refs and DVC names.
SweepName = Annotated[
    StrictStr,
    Field(pattern=r"^[a-z0-9][a-z0-9_-]*$"),
    must_be("lower-case letters, digits, '-' or '_'"),
]
ScalarKey = Annotated[
    StrictStr, AfterValidator(_a_scalar_key), must_be("a key of params.yaml holding one value")
]
VariantName = Annotated[StrictStr, AfterValidator(_a_variant)]
VariantSetting = Annotated[
    StrictStr,
    AfterValidator(_a_setting_of_every_variant),
    must_be("a setting of every variant (not its seed: seeds sets it)"),
]
#: What `-S key=value` can set: a YAML scalar.
OneValue = Annotated[StrictBool | StrictInt | StrictFloat | StrictStr, must_be("one value")]


class Sweep(Settings):
    """A sweep file, checked against params.yaml (`load_sweep` gives its values as the
    validation context), and where it was read from (`source`)."""

    name: SweepName
    param: ScalarKey
    values: Annotated[tuple[FiniteNumber, ...], _distinct_list("finite numbers")]
    variants: Annotated[tuple[VariantName, ...], _distinct_list("keys of models")]
    seeds: Annotated[tuple[Seed, ...], _distinct_list(f"integers 0 to {MAX_SEED}")]
    each_variant: Annotated[dict[VariantSetting, OneValue], WrapValidator(_mapping_of_settings)] = (
        Field(default_factory=dict)
    )
    fixed: Annotated[dict[ScalarKey, OneValue], WrapValidator(_mapping_of_settings)] = Field(
        default_factory=dict, alias="set"
    )

    _source: Path = PrivateAttr()

    @model_validator(mode="after")
    def _each_key_set_once(self) -> "Sweep":
        """Two settings of one key would leave DVC to pick one: the file must say which."""
        keys: set[str] = set()
        for key, _ in self._overrides(self.values[0], self.seeds[0]):
            if key in keys:
                raise PydanticCustomError(
                    "set_twice",
                    "{key} is set twice (by param, seeds, each_variant or set)",
                    {"key": key},
                )
            keys.add(key)
        return self

    def _overrides(self, value: float, seed: int) -> Iterator[tuple[str, Any]]:
        """Each params.yaml key the point (value, seed) sets, and its value, in `-S` order."""
        yield self.param, value
        for variant in self.variants:
            for key, setting in {"seed": seed, **self.each_variant}.items():
                yield f"models.{variant}.{key}", setting
        yield from self.fixed.items()

    @property
    def source(self) -> Path:
        return self._source

    @cached_property
    def points(self) -> tuple[Point, ...]:
        """Every (value, seed) of the sweep, values first."""
        return tuple(
            Point(
                experiment_name(self.name, value, seed),
                value,
                seed,
                dict(self._overrides(value, seed)),
            )
            for value in self.values
            for seed in self.seeds
        )

    @property
    def targets(self) -> list[str]:
        """The stages each experiment reproduces (with what they need, nothing more)."""
        return [f"evaluate@{variant}" for variant in self.variants]

    @property
    def directory(self) -> Path:
        return SUMMARY_ROOT / self.name

    def point(self, name: str) -> Point:
        """The point named `name`; SweepError listing the names otherwise."""
        for point in self.points:
            if point.name == name:
                return point
        raise SweepError(
            f"{self.source}: no experiment {name!r} in this sweep "
            f"(python -m pipeline.tools.sweep matrix {self.source} lists them)"
        )

    def definition(self) -> dict[str, Any]:
        """The sweep as flat settings (for MLflow's params and the summary page)."""
        values = {
            "param": self.param,
            "values": ", ".join(format_value(value) for value in self.values),
            "variants": ", ".join(self.variants),
            "seeds": ", ".join(map(str, self.seeds)),
        }
        values |= {f"each_variant.{key}": value for key, value in self.each_variant.items()}
        return values | {f"set.{key}": value for key, value in self.fixed.items()}


def load_sweep(path: Path, params: dict[str, Any]) -> Sweep:
    """Read and check the sweep file at `path` against params.yaml's `params`; every point's
    params must pass params.yaml's own checks. SweepError names the file and the key."""
    try:
        raw = read_yaml(path)
    except ParamsError as error:
        raise SweepError(str(error)) from None
    try:
        sweep = Sweep.model_validate(raw, context=params)
    except ValidationError as error:
        raise SweepError(f"{path}: {_first_mistake(error.errors(include_url=False))}") from None
    sweep._source = path
    for point in sweep.points:
        try:
            params_from_values(
                apply_overrides(params, point.overrides), Path(f"{path}, {point.name}")
            )
        except ParamsError as error:
            raise SweepError(str(error)) from None
    return sweep


def _first_mistake(errors: list[ErrorDetails]) -> str:
    """The mistake to fix first: an unknown key (the first by name), a missing key, then the
    first refused value, in the order of the fields."""
    keys = ", ".join(field.alias or name for name, field in Sweep.model_fields.items())
    unknown = sorted(
        str(e["loc"][0]) for e in errors if e["type"] in ("extra_forbidden", "invalid_key")
    )
    if unknown:
        return f"unknown key {unknown[0]!r}; the keys are {keys}"
    missing = [error["loc"][0] for error in errors if error["type"] == "missing"]
    if missing:
        return f"missing key {missing[0]!r}; the keys are {keys}"
    first = errors[0]
    if first["type"] == "model_type":
        required = [name for name, field in Sweep.model_fields.items() if field.is_required()]
        return f"must be a mapping with keys {', '.join(required)}"
    return at_key(first["loc"], problem_with(first))
