"""What a dataset, a split and a model variant are, as typed settings, with no torch in them.

Each setting's type holds its check and the words a user reads when a value fails it
("an integer from 0 to 4294967295"): pipeline/runtime/params.py validates params.yaml with
these models, and the sweep (pipeline/tools/sweep_plan.py) its files with these types. Values
keep their YAML types (an int stays an int, a float a float), as DVC records them.

`ModelSpec` is a model's architecture and travels whole: params.yaml ->
`models.build_model(spec, seed)` -> the checkpoint's `config.json` -> the logged MLflow model.
Adding an architecture setting means a field here (in ModelSpec and ModelParams), and its use
in `pipeline/library/models.py`.
"""

from typing import Annotated, Any, Literal

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

ARCHS = ("rnn", "gru", "lstm", "conv1d")
RECURRENT_ARCHS = ("rnn", "gru", "lstm")
#: Each point of a sequence is a corner's (x, y).
N_FEATURES = 2
#: Squares have at most four points; conv1d reads exactly four.
SEQUENCE_LENGTH = 4
#: Settings that conv1d, having no recurrence, must leave at these values.
CONV1D_FIXED = {"num_layers": 1, "bidirectional": False, "packed": False}
#: Gate blocks per recurrent cell: the rows of W_ih are 1, 3 or 4 hidden-size blocks.
GATE_BLOCKS = {"rnn": 1, "gru": 3, "lstm": 4}
MAX_SEED = 2**32 - 1  # NumPy's legacy generator takes seeds below 2**32
#: Names become file names, stage names and MLflow keys: short, and never an option.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"
#: Parquet list offsets are 32-bit: a file holds fewer than 2**31 points, 4 per square.
MAX_SQUARES = 500_000_000
MAX_NOISE = 1e6
#: Adam moves each weight by about lr per step: beyond this nothing is learnt, and from
#: about 1e37 its first step overflows float32.
MAX_LEARNING_RATE = 10.0


class SpecError(ValueError):
    """A spec that no model can be built from; `key` names the offending field."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key} {problem}")
        self.key = key
        self.problem = problem


# ---------------------------------------------------------------------------
# Errors in words: what a value must be, never how a check failed.


def one_line(text: str, limit: int = 80) -> str:
    """One line of at most `limit` characters: no value can flood a message."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def describe(value: Any) -> str:
    """A value for a message, bounded: containers by kind, scalars by a short repr."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return one_line(repr(value), 40)


def must_be(allowed: str) -> WrapValidator:
    """Word any failure of the checks before it as "must be `allowed`": a user reads what to
    write (ctx["allowed"]), not which of pydantic's checks failed."""

    def reword(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError(
                "not_allowed", "must be {allowed}", {"allowed": allowed}
            ) from None

    return WrapValidator(reword)


def problem_with(error: ErrorDetails) -> str:
    """What one pydantic error says is wrong with its value, bounded: a `must_be` check adds
    the value it got, unless the value is a mapping's key (the message names it already)."""
    allowed = (error.get("ctx") or {}).get("allowed")
    if allowed is None:
        return error["msg"]
    if error["loc"][-1:] == ("[key]",):
        return f"must be {allowed}"
    return f"must be {allowed}, got {describe(error['input'])}"


def at_key(loc: tuple[int | str, ...], problem: str) -> str:
    """`problem` after the dotted key at a pydantic error's `loc` (models.gru.lr), if any;
    each part shortened, since a bad name may be long."""
    key = ".".join(one_line(str(part), 70) for part in loc if part != "[key]")
    return f"{key} {problem}" if key else problem


def one_of(options: tuple[str, ...]) -> Any:
    """The type of a choice among `options`, refused in words that list them."""
    return Annotated[Literal[options], must_be(f"one of {', '.join(options)}")]


# ---------------------------------------------------------------------------
# The types of settings. Strict: YAML's `true` is no integer and "1" no number.

#: A YAML int or float, finite, kept as written: 1 stays 1 and 1.0 stays 1.0.
FiniteNumber = StrictInt | Annotated[StrictFloat, AllowInfNan(False)]
Flag = Annotated[StrictBool, must_be("true or false")]
Seed = Annotated[StrictInt, Field(ge=0, le=MAX_SEED), must_be(f"an integer from 0 to {MAX_SEED}")]
PositiveInteger = Annotated[StrictInt, Field(ge=1), must_be("an integer >= 1")]
SquareCount = Annotated[
    StrictInt, Field(ge=1, le=MAX_SQUARES), must_be(f"an integer from 1 to {MAX_SQUARES}")
]
Noise = Annotated[
    FiniteNumber, Field(ge=0, le=MAX_NOISE), must_be(f"a finite number from 0 to {MAX_NOISE:g}")
]
#: A share of the squares held out (split.val, split.test).
Proportion = Annotated[FiniteNumber, Field(gt=0, lt=1), must_be("a number in (0, 1)")]
LearningRate = Annotated[
    FiniteNumber,
    Field(gt=0, le=MAX_LEARNING_RATE),
    must_be(f"a number > 0 and at most {MAX_LEARNING_RATE:g}"),
]
Name = Annotated[
    StrictStr,
    Field(pattern=NAME_PATTERN),
    must_be("a name of 1 to 64 letters, digits, '_' or '-', not starting with '-'"),
]
Arch = one_of(ARCHS)


class Settings(BaseModel):
    """Settings as YAML writes them: frozen, strict, and closed (an unknown key is refused)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def _fixed_for_conv1d(value: Any, info: ValidationInfo) -> Any:
    """conv1d has no recurrence: its recurrent settings must keep their CONV1D_FIXED value."""
    fixed = CONV1D_FIXED[info.field_name]
    if info.data.get("arch") == "conv1d" and value != fixed:
        raise PydanticCustomError(
            "arch_setting", "must be {fixed} for arch conv1d", {"fixed": str(fixed).lower()}
        )
    return value


class ModelSpec(Settings):
    """A classifier's architecture: everything needed to rebuild it before loading weights.

    arch: "rnn", "gru", "lstm" or "conv1d"; hidden_dim: hidden size (conv1d: filters);
    num_layers: stacked recurrent layers; bidirectional: a second layer reads backwards;
    packed: feed a PackedSequence, so each sequence ends at its last real point (false:
    padded only, read at the padded end, zeros included).
    """

    arch: Arch
    hidden_dim: PositiveInteger
    num_layers: PositiveInteger
    bidirectional: Flag
    packed: Flag

    conv1d_has_no_recurrence = field_validator(*CONV1D_FIXED)(staticmethod(_fixed_for_conv1d))

    def __init__(self, *values: Any, **named: Any) -> None:
        """By position (in field order) or by name; a SpecError names the first field no model
        can have. Code builds specs field by field, and a checkpoint's config.json is one."""
        names = list(type(self).model_fields)
        if len(values) > len(names):
            raise TypeError(f"ModelSpec takes {len(names)} fields, got {len(values)}")
        try:
            super().__init__(**dict(zip(names, values, strict=False)), **named)
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            key = ".".join(str(part) for part in first["loc"]) or "config"
            raise SpecError(key, problem_with(first)) from None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelSpec":
        """The spec saved by `to_dict` (a checkpoint's config.json)."""
        names = list(cls.model_fields)
        if not isinstance(values, dict) or sorted(values) != sorted(names):
            raise SpecError("config", f"must have exactly the keys {', '.join(names)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The fields by name, as saved in config.json and logged with the model."""
        return self.model_dump()

    @property
    def recurrent(self) -> bool:
        return self.arch in RECURRENT_ARCHS

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def parameter_count(self) -> int:
        """How many numbers the model learns, from the shapes alone (no torch needed)."""
        hidden = self.hidden_dim
        if self.arch == "conv1d":
            conv = hidden * (N_FEATURES * 2 + 1)  # kernel size 2 over (x, y), plus bias
            return conv + hidden * (SEQUENCE_LENGTH - 1) + 1
        blocks = GATE_BLOCKS[self.arch] * hidden
        total = 0
        for layer in range(self.num_layers):
            inputs = N_FEATURES if layer == 0 else hidden * self.directions
            total += self.directions * blocks * (inputs + hidden + 2)  # W_ih, W_hh, b_ih, b_hh
        return total + hidden * self.directions + 1  # the linear classifier

    def describe(self) -> str:
        """The architecture in words: "bidirectional LSTM, hidden size 2 per direction, packed"."""
        if self.arch == "conv1d":
            filters = "filter" if self.hidden_dim == 1 else "filters"
            return f"1D convolution, {self.hidden_dim} {filters} of size 2"
        words = [f"{self.num_layers}-layer"] if self.num_layers > 1 else []
        words += ["bidirectional"] if self.bidirectional else []
        words.append(self.arch.upper())
        per_direction = " per direction" if self.bidirectional else ""
        packed = ", packed" if self.packed else ""
        return f"{' '.join(words)}, hidden size {self.hidden_dim}{per_direction}{packed}"


class DatasetParams(Settings):
    """How one dataset of squares is drawn (`datasets.<name>`)."""

    n: SquareCount
    noise: Noise
    seed: Seed
    variable_len: Flag
    shuffle_points: Flag


class SplitParams(Settings):
    """Fractions held out for validation and test (`split`); the rest trains."""

    seed: Seed
    val: Proportion
    test: Proportion


class ModelParams(Settings):
    """Everything one model variant needs (`models.<name>`), key for key in params.yaml's
    order: its architecture (`spec`, checked as ModelSpec checks it) and how it trains."""

    arch: Arch
    dataset: Name
    hidden_dim: PositiveInteger
    num_layers: PositiveInteger
    bidirectional: Flag
    packed: Flag
    epochs: PositiveInteger
    batch_size: PositiveInteger
    lr: LearningRate
    seed: Seed
    shuffle_seed: Seed

    conv1d_has_no_recurrence = field_validator(*CONV1D_FIXED)(staticmethod(_fixed_for_conv1d))

    @property
    def spec(self) -> ModelSpec:
        """The architecture alone: what a checkpoint saves."""
        return ModelSpec(**{name: getattr(self, name) for name in ModelSpec.model_fields})

    def settings(self) -> dict[str, Any]:
        """Architecture and training as one flat mapping: everything that made a model."""
        spec = self.spec.to_dict()
        return spec | {key: value for key, value in self.model_dump().items() if key not in spec}
