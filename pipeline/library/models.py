"""Sequence classifiers: recurrent (RNN, GRU, LSTM) and convolutional.

Every model has the same call, `model(sequences, lengths)`, with padded sequences (N, L, F)
and their lengths (N,), and returns its outputs per sequence, (N, O): for two classes one
logit (O = 1, above 0 means class 1: clockwise for squares), for more one logit per class.
F, L and the classes are the data's, carried by the ModelSpec (`Shape`).
Models are plain modules. A trained one is saved as a checkpoint folder: `config.json`
(its ModelSpec) and `weights.pt` (its state dict), loaded with
`torch.load(..., weights_only=True)`: a checkpoint holds tensors, never code.
"""

import io
import json
import pickle
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from pipeline.library.errors import InputError
from pipeline.library.files import atomic_output, write_json
from pipeline.library.settings import SQUARES_SHAPE, ModelSpec, SpecError

RECURRENT_LAYERS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class RecurrentClassifier(nn.Module):
    """A recurrent layer read at its last step, then a linear layer to the outputs (one logit
    for two classes, one per class beyond).

    Packed (`packed=True`), the last step is each sequence's own last real point: the layer
    never sees the padding, and a reverse direction starts at that point. Padded only
    (`packed=False`), the layer runs over every step of the padded array, zeros included, and
    is read at the padded end: the forward state has gone on through the zeros after a short
    sequence's real points, and the reverse direction starts in the zeros. That is what
    padding without packing does; on sequences of one length the two read the same step.

    When bidirectional, the output read is both directions' outputs at that step,
    concatenated: the forward direction has seen the whole sequence there, the reverse
    direction only the last step. That is what the chapter's packed model does.
    """

    def __init__(
        self,
        cell: str,
        hidden_dim: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        packed: bool = False,
        n_features: int = SQUARES_SHAPE.n_features,
        outputs: int = SQUARES_SHAPE.outputs,
    ) -> None:
        super().__init__()
        if cell not in RECURRENT_LAYERS:
            raise ValueError(f"cell must be one of {sorted(RECURRENT_LAYERS)}, got {cell!r}")
        self.packed = packed
        # The recurrent layer is built before the linear one: with a seeded generator, that
        # order decides which random numbers initialise which weights (as in the chapter).
        self.recurrent = RECURRENT_LAYERS[cell](
            n_features,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
        )
        num_directions = 2 if bidirectional else 1
        self.classifier = nn.Linear(hidden_dim * num_directions, outputs)

    def forward(self, sequences: Tensor | PackedSequence, lengths: Tensor | None = None) -> Tensor:
        """Logits (N, O) for padded sequences (N, L, F) with lengths (N,), or a PackedSequence.

        A packed model packs padded input itself; a PackedSequence carries its own lengths. A
        padded model reads step L - 1 of every sequence, whatever its length.
        """
        return self.classifier(self.final_states(sequences, lengths))

    def final_states(
        self, sequences: Tensor | PackedSequence, lengths: Tensor | None = None
    ) -> Tensor:
        """What the classifier reads (N, num_directions * H): the outputs at the last step
        (packed: each sequence's last real point; padded: the padded end)."""
        if not isinstance(sequences, PackedSequence):
            if lengths is None:  # every model has the same call, whichever it reads them
                raise ValueError("padded sequences need their lengths (N,); got lengths=None")
            if not self.packed:
                outputs, _ = self.recurrent(sequences)  # (N, L, num_directions * H)
                return outputs[:, -1]  # the padded end, for every sequence
            sequences = pack_padded_sequence(
                sequences, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
        packed_outputs, _ = self.recurrent(sequences)
        # Reading the packed rows directly gives the same numbers as unpacking to (N, L, D * H)
        # and indexing, without building the padded copy, forward and backward.
        return packed_outputs.data[_last_step_rows(packed_outputs)]


def _last_step_rows(packed: PackedSequence) -> Tensor:
    """The row of packed.data (N,) holding each sequence's last real step, in input order.

    Packed data is time-major: step t is a block of batch_sizes[t] rows, longest sequence first.
    """
    batch_sizes = packed.batch_sizes  # (T,), on the CPU
    sorted_positions = torch.arange(int(batch_sizes[0]))
    sorted_lengths = (batch_sizes > sorted_positions[:, None]).sum(dim=1)
    step_starts = torch.cumsum(batch_sizes, dim=0) - batch_sizes
    rows = (step_starts[sorted_lengths - 1] + sorted_positions).to(packed.data.device)
    return rows if packed.unsorted_indices is None else rows[packed.unsorted_indices]


class ConvClassifier(nn.Module):
    """The chapter's 1D convolution: Conv1d(F -> channels, kernel K), ReLU, flatten, Linear to
    the outputs (one logit for two classes, one per class beyond).

    The kernel slides over K consecutive points (the chapter: pairs), so it sees direction
    locally; the linear layer weighs the L - K + 1 positions. Fixed-length sequences only.
    """

    #: No recurrence, nothing to pack: its batches are collated padded (all of one length).
    packed = False

    def __init__(
        self,
        channels: int,
        sequence_length: int = SQUARES_SHAPE.sequence_length,
        n_features: int = SQUARES_SHAPE.n_features,
        kernel_size: int = 2,
        outputs: int = SQUARES_SHAPE.outputs,
    ) -> None:
        super().__init__()
        self.sequence_length = sequence_length
        # Convolution first, then linear: the seeded initialisation order of the chapter.
        self.conv = nn.Conv1d(n_features, channels, kernel_size=kernel_size)
        positions = sequence_length - kernel_size + 1
        self.classifier = nn.Linear(channels * positions, outputs)

    def forward(self, sequences: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Logits (N, O) for sequences (N, L, F); lengths (N,), if given, must all be L.

        Takes lengths only so that every model has the same call.
        """
        return self.classifier(self.final_states(sequences, lengths))

    def final_states(self, sequences: Tensor, lengths: Tensor | None = None) -> Tensor:
        """What the classifier reads (N, channels * positions): the rectified features."""
        if lengths is not None and bool((lengths != self.sequence_length).any()):
            raise ValueError(
                f"ConvClassifier needs every sequence to have {self.sequence_length} points; "
                "got variable lengths"
            )
        # Conv1d slides over the last axis, so time goes last: (N, L, F) -> (N, F, L).
        window_features = torch.relu(self.conv(sequences.transpose(1, 2)))  # (N, C, L - K + 1)
        return window_features.flatten(1)


def build_model(spec: ModelSpec, seed: int) -> nn.Module:
    """A freshly initialised classifier of `spec` whose initial weights are fully determined by
    `seed` (for conv1d, hidden_dim is the number of filters)."""
    # Seeding right before construction is the chapter's torch.manual_seed(21); forking the
    # generator keeps this from changing anyone else's random numbers.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        shape = spec.shape
        if spec.arch == "conv1d":
            return ConvClassifier(
                spec.hidden_dim,
                shape.sequence_length,
                shape.n_features,
                spec.kernel_size,
                shape.outputs,
            )
        return RecurrentClassifier(
            spec.arch,
            spec.hidden_dim,
            spec.num_layers,
            spec.bidirectional,
            spec.packed,
            shape.n_features,
            shape.outputs,
        )


def count_parameters(model: nn.Module) -> int:
    """How many numbers `model` learns: the elements of all its parameter tensors.

    Biases count too; buffers, which are not learned, do not.
    """
    return sum(parameter.numel() for parameter in model.parameters())


# ---------------------------------------------------------------------------
# A trained model on disk: config.json and weights.pt.

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"


def save_checkpoint(model: nn.Module, spec: ModelSpec, directory: Path | str) -> None:
    """Write `config.json` and `weights.pt` into `directory`, each atomically."""
    directory = Path(directory)
    # Saved through a buffer: torch names the archive's records after the file it
    # writes to, and a buffer gives the same name, hence the same bytes, every time.
    buffer = io.BytesIO()
    torch.save({name: tensor.cpu() for name, tensor in model.state_dict().items()}, buffer)
    with atomic_output(directory / WEIGHTS_FILE) as temporary:
        temporary.write_bytes(buffer.getvalue())
    write_json(directory / CONFIG_FILE, spec.to_dict())


def load_spec(directory: Path | str) -> ModelSpec:
    """The spec of the checkpoint in `directory` (its config.json); InputError naming it."""
    config = Path(directory) / CONFIG_FILE
    try:
        return ModelSpec.from_dict(json.loads(config.read_text()))
    except FileNotFoundError:
        raise InputError(f"{config}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError):
        raise InputError(f"{config}: not a model config (JSON object of a ModelSpec)") from None
    except SpecError as error:
        raise InputError(f"{config}: not a model config ({error.problem})") from None


def load_checkpoint(directory: Path | str) -> nn.Module:
    """The model saved in `directory`, on the CPU, in evaluation mode.

    Raises InputError, one line naming the file, for anything but a checkpoint we wrote.
    """
    directory = Path(directory)
    config, weights = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    spec = load_spec(directory)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it will refuse
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(weights, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{weights}: file not found") from None
    except pickle.UnpicklingError:
        raise InputError(
            f"{weights}: refused: not a weights-only checkpoint (it holds code)"
        ) from None
    except Exception as error:
        raise InputError(f"{weights}: not a checkpoint ({_first_line(error)})") from None
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise InputError(f"{weights}: not a state dict of tensors")
    numbers = sum(tensor.numel() for tensor in state.values())
    if numbers != spec.parameter_count():  # before building: a bad config could ask for TBs
        raise InputError(
            f"{weights}: holds {numbers} numbers, but {config} describes a model of "
            f"{spec.parameter_count()}"
        )
    model = build_model(spec, seed=0)  # its initial weights are replaced below
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise InputError(f"{weights}: not weights for {config} ({_first_line(error)})") from None
    if not all(torch.isfinite(tensor).all() for tensor in model.state_dict().values()):
        raise InputError(f"{weights}: holds NaN or infinite weights")
    return model.eval()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:120] if text else type(error).__name__
