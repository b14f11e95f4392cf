"""params.yaml, the user's contract, validated into typed objects.

The file is read exactly as DVC reads it (ruamel.yaml's safe loader: YAML 1.2, duplicate
keys refused), so the values a stage uses are the values `dvc.lock` records. It is parsed
once per process; a mistake anywhere stops the pipeline before anything is written, with
one line that names the key and says what is allowed. Nothing else reads params.yaml.

Each section is a pydantic model of pipeline/library/settings.py, whose field types hold
the checks and their words; here pydantic's errors become that one line, and the checks
across sections follow. Nothing here imports torch, so params are checked before any heavy
import.
"""

from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, Field, PrivateAttr, ValidationError
from pydantic_core import ErrorDetails

from pipeline.library.errors import ParamsError
from pipeline.library.settings import (
    DATASET_CLASSES,
    DATASET_KINDS,
    DatasetParams,
    ModelParams,
    Name,
    Settings,
    SplitParams,
    at_key,
    describe,
    one_line,
    one_of,
    problem_with,
)

DEVICES = ("auto", "cpu", "cuda")
#: CPU kernel families torch can be pinned to (see pipeline/library/numerics.py).
CPU_CAPABILITIES = ("default", "avx2", "avx512")
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 8  # the contract nests 3 deep; deeper is a mistake, not a setting
#: Each split part must keep at least one square of a dataset: rounding per class can lose
#: one square per part, so fraction x n must reach 2 (see `pipeline.library.split`).
MIN_PART_SHARE = 2


class Params(Settings):
    """The validated params.yaml, read from `source`; `values` keeps the plain values as DVC
    reads them (both set by `params_from_values`)."""

    datasets: Annotated[dict[Name, DatasetParams], Field(min_length=1)]
    split: SplitParams
    models: Annotated[dict[Name, ModelParams], Field(min_length=1)]
    device: one_of(DEVICES)
    cpu_capability: one_of(CPU_CAPABILITIES)

    _values: dict[str, Any] = PrivateAttr()
    _source: Path = PrivateAttr()

    @property
    def values(self) -> dict[str, Any]:
        return self._values

    @property
    def source(self) -> Path:
        return self._source

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
# Loading.


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml; raise ParamsError naming the bad key."""
    path = Path(path)
    return params_from_values(read_yaml(path), path)


def params_from_values(values: Any, source: Path) -> Params:
    """Validate values parsed from `source` (params.yaml) into Params; ParamsError naming
    the first mistake otherwise."""
    try:
        params = Params.model_validate(values)
    except ValidationError as error:
        raise ParamsError(f"{source}: {_first_mistake(error)}") from None
    params._values, params._source = values, source
    _check_across_sections(params)
    return params


def _check_across_sections(params: Params) -> None:
    """What no section can check alone: the split leaves every part of every dataset some
    squares, and each model fits its dataset."""
    split, datasets = params.split, params.datasets
    if Fraction(repr(split.val)) + Fraction(repr(split.test)) >= 1:
        _refuse(
            params,
            "split.val + split.test",
            f"must be < 1 (the rest is training), got {split.val} + {split.test}",
        )
    for name, dataset in datasets.items():
        for part in ("val", "test"):
            share = Fraction(repr(getattr(split, part))) * dataset.n
            if share < MIN_PART_SHARE:
                _refuse(
                    params,
                    f"split.{part}",
                    f"leaves datasets.{name} (n = {dataset.n}) too few squares: {part} x n must "
                    f"be at least {MIN_PART_SHARE}, got {getattr(split, part)} x {dataset.n}",
                )
    for name, model in params.models.items():
        key = f"models.{name}"
        if model.dataset not in datasets:
            known = ", ".join(datasets)
            _refuse(
                params,
                f"{key}.dataset",
                f"must name a key of datasets ({known}), got {model.dataset!r}",
            )
        dataset = datasets[model.dataset]
        variable_len, steps = dataset.variable_len, dataset.shape.sequence_length
        if model.arch == "conv1d" and variable_len:
            _refuse(params, f"{key}.dataset", "must be a fixed-length dataset for arch conv1d")
        if model.kernel_size > steps:
            _refuse(
                params,
                f"{key}.kernel_size",
                f"must be at most the {steps} steps of dataset {model.dataset!r}, "
                f"got {model.kernel_size}",
            )
        if model.packed and not variable_len:
            # Every sequence has every step: packing would cut nothing and only cost time.
            # (Unpacked on variable lengths is allowed: padding is a variant to compare.)
            _refuse(
                params,
                f"{key}.packed",
                f"must be false on fixed-length dataset {model.dataset!r} (every sequence has "
                f"{steps} steps: nothing to pack)",
            )


def _refuse(params: Params, key: str, problem: str) -> None:
    raise ParamsError(f"{params.source}: {key} {problem}")


# ---------------------------------------------------------------------------
# pydantic's errors, as one line.

#: A section's structure comes before its names, and its names before its values: an unknown
#: key (a typo) explains more than the value missing under the right one.
_STRUCTURE_RANK = {"missing": 0, "extra_forbidden": 1, "invalid_key": 1}
_NAME_RANK, _VALUE_RANK = 2, 3


def _first_mistake(error: ValidationError) -> str:
    """The mistake to fix first, as "<dotted key> <problem>": within each mapping its missing
    and unknown keys, then its names, then its values; keys in the order of the settings'
    fields, names in the file's."""
    errors = error.errors(include_url=False)
    seen: dict[tuple[Any, ...], int] = {}  # each location, in the order pydantic met it
    for found in errors:
        for end in range(1, len(found["loc"]) + 1):
            seen.setdefault(found["loc"][:end], len(seen))

    def precedence(found: ErrorDetails) -> list[tuple[int, int]]:
        loc = found["loc"]
        ranks = []
        for end in range(1, len(loc) + 1):
            if end == len(loc):
                rank = _STRUCTURE_RANK.get(found["type"], _VALUE_RANK)
            else:
                rank = _NAME_RANK if loc[end:] == ("[key]",) else _VALUE_RANK
            ranks.append((rank, seen[loc[:end]]))
        return ranks

    return _explain(min(errors, key=precedence))


def _explain(error: ErrorDetails) -> str:
    tagged, kind = error["loc"], error["type"]
    loc = _untagged(tagged)
    if kind == "unknown_kind":
        return at_key(
            (*loc, "kind"),
            f"must be one of {', '.join(DATASET_KINDS)}, got {describe(error['input']['kind'])}",
        )
    if kind in ("extra_forbidden", "invalid_key"):
        allowed = ", ".join(_section_at(tagged[:-1]).model_fields)
        unknown = one_line(str(loc[-1]), 40)
        return at_key((*loc[:-1], unknown), f"is not a known key (allowed: {allowed})")
    if kind == "missing":
        return at_key(loc, "is missing")
    if kind == "model_type":
        return at_key(loc, f"must be a mapping of {', '.join(_section_at(tagged).model_fields)}")
    if kind in ("dict_type", "too_short"):
        return at_key(loc, "must be a non-empty mapping of names to settings")
    return at_key(loc, problem_with(error))


def _untagged(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """`loc` without the kind pydantic puts after a dataset's name (datasets.d.digits.order)."""
    if loc[:1] == ("datasets",) and len(loc) > 2 and loc[2] in DATASET_CLASSES:
        return loc[:2] + loc[3:]
    return loc


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    """The settings model of the mapping at (tagged) `loc`: Params, or one of its named
    sections (a dataset's by the kind in its location)."""
    section: Any = Params
    parts = iter(loc)
    for part in parts:
        section = section.model_fields[part].annotation
        if get_origin(section) is dict:
            section = get_args(section)[1]
            next(parts, None)  # the section's name
            if section is DatasetParams:
                section = DATASET_CLASSES[next(parts, "squares")]
    return section


# ---------------------------------------------------------------------------
# Reading the YAML.


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
        raise ParamsError(f"{path}: not valid YAML{where}: {one_line(problem)}") from None
    except YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {one_line(str(error))}") from None
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
