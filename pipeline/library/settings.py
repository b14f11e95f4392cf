"""What a dataset, a split and a model variant are, as typed settings, with no torch in them.

`ModelSpec` is a model's architecture and travels whole: params.yaml -> `models.build_model(spec, seed)` -> the
checkpoint's `config.json` -> the logged MLflow model. Adding an architecture setting
means a field here, and its use in `pipeline/library/models.py`.
"""

from dataclasses import asdict, dataclass, fields
from typing import Any

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


class SpecError(ValueError):
    """A spec that no model can be built from; `key` names the offending field."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key} {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class ModelSpec:
    """A classifier's architecture: everything needed to rebuild it before loading weights.

    arch: "rnn", "gru", "lstm" or "conv1d"; hidden_dim: hidden size (conv1d: filters);
    num_layers: stacked recurrent layers; bidirectional: a second layer reads backwards;
    packed: feed a PackedSequence (needed by bidirectional models on variable lengths).
    """

    arch: str
    hidden_dim: int
    num_layers: int
    bidirectional: bool
    packed: bool

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise SpecError("arch", f"must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.arch == "conv1d":
            for key, allowed in CONV1D_FIXED.items():
                if getattr(self, key) != allowed:
                    raise SpecError(key, f"must be {str(allowed).lower()} for arch conv1d")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelSpec":
        """The spec saved by `to_dict` (a checkpoint's config.json)."""
        names = [field.name for field in fields(cls)]
        if not isinstance(values, dict) or sorted(values) != sorted(names):
            raise SpecError("config", f"must have exactly the keys {', '.join(names)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The fields by name, as saved in config.json and logged with the model."""
        return asdict(self)

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
    """Everything one model variant needs (`models.<name>`): its architecture and training."""

    spec: ModelSpec
    dataset: str
    epochs: int
    batch_size: int
    lr: float
    seed: int
    shuffle_seed: int

    def settings(self) -> dict[str, Any]:
        """Architecture and training as one flat mapping: everything that made a model."""
        training = {field.name: getattr(self, field.name) for field in fields(self)[1:]}
        return {**self.spec.to_dict(), **training}
