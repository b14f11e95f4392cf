"""What a dataset, a split and a model variant are, as typed settings, with no torch in them.

Each setting's type holds its check and the words a user reads when a value fails it
("an integer from 0 to 4294967295"): pipeline/runtime/params.py validates params.yaml with
these models, and the sweep (pipeline/tools/sweep_plan.py) its files with these types. Values
keep their YAML types (an int stays an int, a float a float), as DVC records them.

`ModelSpec` is a model's architecture and the shape of the data it reads (features per step,
steps, classes: a `Shape`, taken from the data) and travels whole: params.yaml and the
training split -> `models.build_model(spec, seed)` -> the checkpoint's `config.json` -> the
logged MLflow model. Adding an architecture setting means a field here (in ModelSpec and
ModelParams), and its use in `pipeline/library/models.py`.

Datasets come in kinds (`datasets.<name>.kind`): `squares`, the default, and `digits`. Each
kind's params say, before any run, the shape its files will have (`DatasetParams.shape`), so
a model that cannot fit its data is refused before anything runs. Adding a kind means a
params class here, in the `DatasetParams` union, and a generator in pipeline/library/.
"""

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

ARCHS = ("rnn", "gru", "lstm", "conv1d")
RECURRENT_ARCHS = ("rnn", "gru", "lstm")
#: The kinds of dataset (`datasets.<name>.kind`); a dataset without `kind` is squares.
DATASET_KINDS = ("squares", "digits")
#: How a digit's 8x8 image becomes a sequence (`datasets.<name>.order`, see
#: pipeline/library/digits.py): 8 rows of 8 pixels, or 64 pixels in reading order, in one
#: seeded permutation shared by every image, or in a new seeded order per image.
READING_ORDERS = ("rows", "pixels", "pixels_permuted", "pixels_shuffled")
#: The digits scikit-learn ships (load_digits): 1,797 images of 8x8 pixels, labels 0 to 9.
DIGITS_COUNT, DIGIT_SIDE, DIGIT_CLASSES = 1797, 8, 10
#: conv1d's kernel spans this many consecutive steps unless `kernel_size` says otherwise.
DEFAULT_KERNEL = 2
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


@dataclass(frozen=True)
class Shape:
    """What a model reads and answers: features per step, steps per sequence (the longest),
    and classes (two: one logit; more: one output per class)."""

    n_features: int
    sequence_length: int
    n_classes: int

    @property
    def outputs(self) -> int:
        """A model's outputs: one logit for two classes (binary cross-entropy), else one per
        class (cross-entropy)."""
        return 1 if self.n_classes == 2 else self.n_classes


#: The chapter's squares: (x, y) corners, at most four, clockwise or not. A checkpoint whose
#: config.json names no shape is of squares (the format before other kinds of data).
SQUARES_SHAPE = Shape(n_features=2, sequence_length=4, n_classes=2)


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


def _kernel_for_conv1d(value: Any, info: ValidationInfo) -> Any:
    """Only conv1d has a kernel: a recurrent model leaves kernel_size at its default."""
    if info.data.get("arch") != "conv1d" and value != DEFAULT_KERNEL:
        raise PydanticCustomError("arch_setting", "is for arch conv1d only", {})
    return value


class ModelSpec(Settings):
    """A classifier's architecture: everything needed to rebuild it before loading weights.

    arch: "rnn", "gru", "lstm" or "conv1d"; hidden_dim: hidden size (conv1d: filters);
    num_layers: stacked recurrent layers; bidirectional: a second layer reads backwards;
    packed: feed a PackedSequence, so each sequence ends at its last real point (false:
    padded only, read at the padded end, zeros included);
    kernel_size: the steps conv1d's kernel spans; n_features, sequence_length, n_classes: the
    shape of its data (`Shape`). The last four default to the squares' and are saved only
    when they differ, so the squares' checkpoints keep their bytes.
    """

    arch: Arch
    hidden_dim: PositiveInteger
    num_layers: PositiveInteger
    bidirectional: Flag
    packed: Flag
    kernel_size: PositiveInteger = DEFAULT_KERNEL
    n_features: PositiveInteger = SQUARES_SHAPE.n_features
    sequence_length: PositiveInteger = SQUARES_SHAPE.sequence_length
    n_classes: Annotated[StrictInt, Field(ge=2), must_be("an integer >= 2")] = (
        SQUARES_SHAPE.n_classes
    )

    conv1d_has_no_recurrence = field_validator(*CONV1D_FIXED)(staticmethod(_fixed_for_conv1d))
    kernel_only_for_conv1d = field_validator("kernel_size")(staticmethod(_kernel_for_conv1d))

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
        fields = cls.model_fields
        required = [name for name, field in fields.items() if field.is_required()]
        if (
            not isinstance(values, dict)
            or not set(required) <= set(values)
            or not set(values) <= set(fields)
        ):
            raise SpecError(
                "config",
                f"must have the keys {', '.join(required)} and may have "
                f"{', '.join(sorted(set(fields) - set(required)))}",
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The fields by name, as saved in config.json and logged with the model; those at
        their default (the squares' shape, conv1d's kernel of 2) are left out."""
        return self.model_dump(exclude_defaults=True)

    @property
    def shape(self) -> Shape:
        return Shape(self.n_features, self.sequence_length, self.n_classes)

    @property
    def recurrent(self) -> bool:
        return self.arch in RECURRENT_ARCHS

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def parameter_count(self) -> int:
        """How many numbers the model learns, from the shapes alone (no torch needed)."""
        hidden, outputs = self.hidden_dim, self.shape.outputs
        if self.arch == "conv1d":
            conv = hidden * (self.n_features * self.kernel_size + 1)  # kernel, plus bias
            positions = self.sequence_length - self.kernel_size + 1
            return conv + (hidden * positions + 1) * outputs
        blocks = GATE_BLOCKS[self.arch] * hidden
        total = 0
        for layer in range(self.num_layers):
            inputs = self.n_features if layer == 0 else hidden * self.directions
            total += self.directions * blocks * (inputs + hidden + 2)  # W_ih, W_hh, b_ih, b_hh
        return total + (hidden * self.directions + 1) * outputs  # the linear classifier

    def describe(self) -> str:
        """The architecture in words: "bidirectional LSTM, hidden size 2 per direction, packed"."""
        if self.arch == "conv1d":
            filters = "filter" if self.hidden_dim == 1 else "filters"
            return f"1D convolution, {self.hidden_dim} {filters} of size {self.kernel_size}"
        words = [f"{self.num_layers}-layer"] if self.num_layers > 1 else []
        words += ["bidirectional"] if self.bidirectional else []
        words.append(self.arch.upper())
        per_direction = " per direction" if self.bidirectional else ""
        packed = ", packed" if self.packed else ""
        return f"{' '.join(words)}, hidden size {self.hidden_dim}{per_direction}{packed}"


class SquaresParams(Settings):
    """How one dataset of squares is drawn (`datasets.<name>`, kind `squares`, the default)."""

    kind: Literal["squares"] = "squares"
    n: SquareCount
    noise: Noise
    seed: Seed
    variable_len: Flag
    shuffle_points: Flag

    @property
    def shape(self) -> Shape:
        return SQUARES_SHAPE

    def describe(self) -> str:
        """In words: "1,024 squares, noise 0.1, 4 points each"."""
        points = "2 to 4 points each" if self.variable_len else "4 points each"
        order = ", points shuffled" if self.shuffle_points else ""
        return f"{self.n:,} squares, noise {self.noise:g}, {points}{order}"


class DigitsParams(Settings):
    """scikit-learn's 8x8 digits read as sequences (`datasets.<name>`, kind `digits`): `order`
    says how (READING_ORDERS); `seed` draws the permutation or the per-image orders."""

    kind: Literal["digits"]
    order: one_of(READING_ORDERS)
    seed: Seed

    #: Every image is read whole: the same number of steps for all; no squares' points.
    variable_len: ClassVar[bool] = False
    shuffle_points: ClassVar[bool] = False

    @property
    def n(self) -> int:
        return DIGITS_COUNT

    @property
    def shape(self) -> Shape:
        if self.order == "rows":
            return Shape(DIGIT_SIDE, DIGIT_SIDE, DIGIT_CLASSES)
        return Shape(1, DIGIT_SIDE * DIGIT_SIDE, DIGIT_CLASSES)

    def describe(self) -> str:
        """In words: "1,797 digits, 8 steps of 8 pixels (rows)"."""
        shape = self.shape
        pixels = "pixel" if shape.n_features == 1 else "pixels"
        steps = f"{shape.sequence_length} steps of {shape.n_features} {pixels}"
        return f"{self.n:,} digits, {steps} ({self.order.replace('_', ' ')})"


def _dataset_kind(values: Any) -> str | None:
    """Which params class a dataset's values are: its `kind`, squares when it has none; None
    (refused in words) when `kind` names no kind."""
    if not isinstance(values, dict):  # a params object, or no mapping (refused as squares)
        return getattr(values, "kind", "squares")
    kind = values.get("kind", "squares")
    return kind if isinstance(kind, str) and kind in DATASET_KINDS else None


#: Each kind's params class: pydantic tags its errors' locations with the kind.
DATASET_CLASSES: dict[str, type[Settings]] = {"squares": SquaresParams, "digits": DigitsParams}


#: One dataset's params, of whichever kind its `kind` names.
DatasetParams = Annotated[
    Annotated[SquaresParams, Tag("squares")] | Annotated[DigitsParams, Tag("digits")],
    Discriminator(
        _dataset_kind,
        custom_error_type="unknown_kind",
        custom_error_message="kind must be one of " + ", ".join(DATASET_KINDS),
    ),
]


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
    kernel_size: PositiveInteger = DEFAULT_KERNEL
    epochs: PositiveInteger
    batch_size: PositiveInteger
    lr: LearningRate
    seed: Seed
    shuffle_seed: Seed

    conv1d_has_no_recurrence = field_validator(*CONV1D_FIXED)(staticmethod(_fixed_for_conv1d))
    kernel_only_for_conv1d = field_validator("kernel_size")(staticmethod(_kernel_for_conv1d))

    def spec(self, shape: Shape) -> ModelSpec:
        """The architecture for data of `shape`: what a checkpoint saves."""
        own = [name for name in ModelSpec.model_fields if name in type(self).model_fields]
        return ModelSpec(**{name: getattr(self, name) for name in own}, **vars(shape))

    def settings(self) -> dict[str, Any]:
        """Architecture and training as one flat mapping, architecture first: everything that
        made a model but its data's shape (conv1d's kernel only where it is not the default)."""
        values = self.model_dump(exclude_defaults=True)
        spec = [name for name in ModelSpec.model_fields if name in values]
        return {name: values[name] for name in spec} | {
            key: value for key, value in values.items() if key not in spec
        }
