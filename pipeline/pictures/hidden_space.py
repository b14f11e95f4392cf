"""The hidden space of a trained recurrent classifier, as numbers ready to draw.

The hidden state is the representation of a sequence: this module computes where the test
sequences' hidden states lie after each step, where the classifier's decision boundary runs
through that space, and how each operation of a cell moves the whole hidden plane (the
"journey" of a hidden state) while it reads the clockwise square A, B, C, D and its
counter-clockwise counterpart A, D, C, B, up to where the classifier reads it. Everything is
recomputed from the trained weights with the from-scratch cells of `pipeline.library.cells`, so every
intermediate is available. A hidden space of more than two dimensions is drawn in a plane:
for the decision boundary, the plane of the classifier's direction and the states' main
spread across it (so the boundary stays exact); for a journey, the plane of the states'
first two principal components.
"""

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.library.cells import (
    CellWeights,
    GRUStep,
    LSTMStep,
    RNNStep,
    gru_step,
    lstm_step,
    rnn_step,
)
from pipeline.library.cells import unroll as unroll_cell
from pipeline.library.models import RecurrentClassifier
from pipeline.library.squares import CORNER_NAMES, CORNERS, NOISE_FREE, Squares, step_mask

Step = RNNStep | GRUStep | LSTMStep


@dataclass(frozen=True)
class Operation:
    """One column of a journey: the formula of what it shows (mathtext), and the gate whose
    values multiply in it, if any (one of GATE_FIELDS)."""

    formula: str
    gate: str | None = None


#: What each column of a journey shows, in order; the first is the hidden state read in.
OPERATIONS = {
    "rnn": (
        Operation(r"$h$"),
        Operation(r"$t_h = W_{hh}h + b_{hh}$"),
        Operation(r"$t_h + t_x$"),
        Operation(r"$h' = \tanh(t_h + t_x)$"),
    ),
    "gru": (
        Operation(r"$h$"),
        Operation(r"$t_{hn} = W_{hn}h + b_{hn}$"),
        Operation(r"$r \odot t_{hn}$", "r"),
        Operation(r"$r \odot t_{hn} + t_{xn}$"),
        Operation(r"$n = \tanh(r \odot t_{hn} + t_{xn})$"),
        Operation(r"$(1 - z) \odot n$", "z"),
        Operation(r"$h' = (1 - z) \odot n + z \odot h$", "z"),
    ),
    "lstm": (
        Operation(r"$h$"),
        Operation(r"$g$ (candidate)"),
        Operation(r"$i \odot g$", "i"),
        Operation(r"$f \odot c$", "f"),
        Operation(r"$c' = f \odot c + i \odot g$"),
        Operation(r"$\tanh(c')$"),
        Operation(r"$h' = o \odot \tanh(c')$", "o"),
    ),
}
#: Each gate's symbol and the field of the cell's step that holds its values.
GATE_FIELDS = {
    "r": "reset_gate",
    "z": "update_gate",
    "i": "input_gate",
    "f": "forget_gate",
    "o": "output_gate",
}

#: The gate blocks of W_ih x + b_ih, in torch's stacking order, named for a reader.
INPUT_BLOCKS = {
    "rnn": ("$t_x$",),
    "gru": ("reset $r$", "update $z$", "candidate $n$"),
    "lstm": ("input $i$", "forget $f$", "candidate $g$", "output $o$"),
}

#: The clockwise noise-free square read from corner A: A, B, C, D.
CLOCKWISE_FROM_A = NOISE_FREE[0, 1]
#: The squares whose journeys are drawn, as (label, corner indices): clockwise A, B, C, D and
#: its counter-clockwise counterpart from the same corner, A, D, C, B (the chapter's pair).
JOURNEY_SQUARES = ((1, (0, 1, 2, 3)), (0, (0, 3, 2, 1)))


@dataclass(frozen=True)
class LayerRun:
    """One recurrent layer run over padded sequences, every direction in time order.

    inputs: (N, L, F) what the layer reads (the sequences, or the previous layer's outputs).
    directions: one unrolled cell per direction (forward, then backward), fields (N, L, H).
    """

    inputs: Tensor
    directions: tuple[Step, ...]

    @property
    def outputs(self) -> Tensor:
        """(N, L, D * H): the directions' hidden states side by side, as torch concatenates them."""
        return torch.cat([direction.hidden for direction in self.directions], dim=-1)


@torch.no_grad()
def unroll_layers(
    recurrent: nn.RNNBase, sequences: Tensor, lengths: Tensor, packed: bool
) -> list[LayerRun]:
    """Every layer of `recurrent` over sequences (N, L, F) with lengths (N,), via the cells.

    Matches the torch layer at every real step; `packed` starts the backward direction at each
    sequence's last real point, as packing does (unpacked, it starts at the padded end).
    """
    length = sequences.shape[1]
    reading_lengths = lengths if packed else torch.full_like(lengths, length)
    order = _reversed_order(reading_lengths, length)
    runs = []
    inputs = sequences
    for layer in range(recurrent.num_layers):
        directions = [unroll_cell(CellWeights.from_layer(recurrent, layer), inputs)]
        if recurrent.bidirectional:
            weights = CellWeights.from_layer(recurrent, layer, reverse=True)
            backward = unroll_cell(weights, _reorder(inputs, order))
            in_time_order = {
                field.name: _reorder(getattr(backward, field.name), order)
                for field in fields(backward)
            }
            directions.append(replace(backward, **in_time_order))
        run = LayerRun(inputs, tuple(directions))
        runs.append(run)
        inputs = run.outputs
    return runs


def _reversed_order(lengths: Tensor, length: int) -> Tensor:
    """(N, L) step indices that read each sequence's first `lengths` steps backwards.

    Padding stays in place; the order is its own inverse, so it also undoes the reversal.
    """
    steps = torch.arange(length)
    return torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)


def _reorder(values: Tensor, order: Tensor) -> Tensor:
    """values (N, L, K) with each sequence's steps taken in `order` (N, L)."""
    return values.gather(1, order[:, :, None].expand(-1, -1, values.shape[2]))


@dataclass(frozen=True)
class Plane:
    """The plane a D-dimensional hidden space is drawn in, and the square of it worth drawing.

    mean: (D,), components: (2, D) orthonormal rows, axis_names: what each row is; explained:
    (2,) the fraction of the states' variance along each axis, or None when the hidden space
    is the plane itself (D = 2); extent: half the side of [-extent, extent]^2, which holds
    the fitted states.
    """

    mean: np.ndarray
    components: np.ndarray
    axis_names: tuple[str, str]
    explained: np.ndarray | None
    extent: float

    def project(self, states: np.ndarray) -> np.ndarray:
        """States (..., D) as points (..., 2) in the plane."""
        return (states - self.mean) @ self.components.T

    def lift(self, points: np.ndarray) -> np.ndarray:
        """Points (..., 2) of the plane as states (..., D) of the hidden space."""
        return self.mean + points @ self.components

    @property
    def axis_labels(self) -> tuple[str, str]:
        """What the plane's axes are, for a reader, with the variance each keeps."""
        if self.explained is None:
            return self.axis_names
        return tuple(
            f"{name} ({fraction:.0%} of variance)"
            for name, fraction in zip(self.axis_names, self.explained, strict=True)
        )


def fit_plane(states: np.ndarray, normal: np.ndarray | None = None) -> Plane:
    """The plane to draw states (M, D) in: the hidden space itself when D = 2, else PCA's.

    With a classifier's weight vector as `normal` (D,), the first axis is that direction and
    the second the states' main direction across it: the decision boundary is then exact in
    the plane, where the top two principal components may all but miss it.
    """
    dimensions = states.shape[1]
    if dimensions < 2:
        raise ValueError(f"hidden-space figures need hidden_dim >= 2, got {dimensions}")
    if dimensions == 2:
        mean, components = np.zeros(2), np.eye(2)
        axis_names, explained = ("$h_0$", "$h_1$"), None
    else:
        mean = states.mean(axis=0)
        centred = states - mean
        if normal is None:
            components = _principal_directions(centred, 2)
            axis_names = ("PC1", "PC2")
        else:
            first = normal / np.linalg.norm(normal)
            across = centred - np.outer(centred @ first, first)
            components = np.stack([first, _principal_directions(across, 1)[0]])
            axis_names = ("classifier direction", "main direction across it")
        explained = ((centred @ components.T) ** 2).sum(axis=0) / (centred**2).sum()
    extent = max(1.0, float(np.abs((states - mean) @ components.T).max()))
    return Plane(mean, components, axis_names, explained, extent)


def _principal_directions(centred: np.ndarray, count: int) -> np.ndarray:
    """The top `count` principal directions (count, D) of centred rows (M, D).

    Signs are fixed (largest loading positive) so that refits draw the same way round.
    """
    directions = np.linalg.svd(centred, full_matrices=False)[2][:count]
    largest = np.abs(directions).argmax(axis=1)
    return directions * np.sign(directions[np.arange(count), largest])[:, None]


@torch.no_grad()
def boundary_probabilities(
    classifier: nn.Linear, plane: Plane, coordinates: np.ndarray
) -> np.ndarray:
    """P(clockwise) (R, R) on the plane's grid: [i, j] is at x = coordinates[j], y = [i].

    Each grid point is lifted into the hidden space and scored by the classifier: exact when the
    plane holds the classifier's direction (fit_plane with `normal`), approximate otherwise.
    """
    xs, ys = np.meshgrid(coordinates, coordinates)
    states = plane.lift(np.stack([xs, ys], axis=-1))
    logits = classifier(torch.as_tensor(states, dtype=classifier.weight.dtype))
    return torch.sigmoid(logits)[..., 0].double().numpy()


@torch.no_grad()
def transformed_corners(weights: CellWeights) -> tuple[Tensor, ...]:
    """The corners A, B, C, D (4, 2) mapped by W_ih x + b_ih: one (4, H) block per gate.

    Blocks follow torch's order (see INPUT_BLOCKS); they are what each gate adds for a corner.
    """
    corners = torch.as_tensor(CLOCKWISE_FROM_A, dtype=weights.weight_ih.dtype)
    transform = corners @ weights.weight_ih.T + weights.bias_ih
    return transform.chunk(len(INPUT_BLOCKS[weights.kind]), dim=-1)


@dataclass(frozen=True)
class Reading:
    """Where the classifier reads one direction of a square's journey, in the journey's plane.

    step: the step (0-based) after which the classifier reads this direction; the logit at a
    plane point p is weights @ p + bias, every other direction held at its actual state for
    this square: so the decision boundary, weights @ p + bias = 0, is a line, exact in the plane.
    """

    step: int
    weights: np.ndarray
    bias: float

    def logit(self, points: np.ndarray) -> np.ndarray:
        """The classifier's logit at plane points (..., 2): above 0 reads clockwise."""
        return points @ self.weights + self.bias


@dataclass(frozen=True)
class Journey:
    """How one direction of a recurrent layer moves its hidden plane while reading a square.

    label: the square's label; corners: the corner read at each of the L steps; operations: the
    O columns (OPERATIONS); plane: where it is drawn (its grid spans the plane's extent).
    grids: (L, O, K, S, 2) the K grid lines of S points each after each operation, in the plane;
    states: (L, O, 2) the actual hidden state after each operation, in the plane;
    hidden: (L + 1, H) the actual hidden states h_0 .. h_L, unprojected;
    gates: each gate's values (L, H) at the actual state, by symbol (GATE_FIELDS);
    reading: where and how the classifier reads this direction.
    """

    label: int
    corners: tuple[str, ...]
    operations: tuple[Operation, ...]
    plane: Plane
    grids: np.ndarray
    states: np.ndarray
    hidden: np.ndarray
    gates: dict[str, np.ndarray]
    reading: Reading


def grid_lines(extent: float, n_lines: int = 9, n_samples: int = 33) -> np.ndarray:
    """(2 * n_lines, n_samples, 2): a square grid over [-extent, extent]^2 as polylines.

    Vertical lines first, then horizontal ones; enough samples that bent lines look bent.
    """
    positions = np.linspace(-extent, extent, n_lines)
    samples = np.linspace(-extent, extent, n_samples)
    across, along = np.meshgrid(positions, samples, indexing="ij")
    vertical = np.stack([across, along], axis=-1)
    return np.concatenate([vertical, vertical[..., ::-1]])


@torch.no_grad()
def grid_journey(
    weights: CellWeights,
    inputs: Tensor,
    label: int,
    corners: tuple[str, ...],
    plane: Plane,
    reading: Reading,
) -> Journey:
    """Read inputs (L, F) from h_0 = 0, moving a square grid over the plane at every step.

    Each step starts from the same grid with the actual state among its points; an LSTM's
    grid points all share the actual cell state, since the plane only spans the hidden state.
    """
    operations = OPERATIONS[weights.kind]
    gate_fields = {op.gate: GATE_FIELDS[op.gate] for op in operations if op.gate is not None}
    grid = grid_lines(plane.extent)
    lifted = torch.as_tensor(plane.lift(grid.reshape(-1, 2)), dtype=weights.weight_ih.dtype)
    hidden = inputs.new_zeros(1, weights.hidden_dim)
    cell = inputs.new_zeros(1, weights.hidden_dim)
    path, step_images = [hidden], []
    gates: dict[str, list[Tensor]] = {gate: [] for gate in gate_fields}
    for x in inputs:
        # The actual state rides along as the last point, so it moves exactly as the grid.
        points = torch.cat([lifted, hidden])
        images, step = _OPERATION_IMAGES[weights.kind](
            weights, x[None], points, cell.expand_as(points)
        )
        hidden = step.hidden[-1:]
        if isinstance(step, LSTMStep):
            cell = step.cell[-1:]
        path.append(hidden)
        step_images.append(plane.project(torch.stack(images).double().numpy()))
        for gate, field in gate_fields.items():
            gates[gate].append(getattr(step, field)[-1])
    planes = np.stack(step_images)  # (L, O, K * S + 1, 2)
    return Journey(
        label=label,
        corners=corners,
        operations=operations,
        plane=plane,
        grids=planes[:, :, :-1].reshape(*planes.shape[:2], *grid.shape),
        states=planes[:, :, -1],
        hidden=torch.cat(path).double().numpy(),
        gates={gate: torch.stack(values).double().numpy() for gate, values in gates.items()},
        reading=reading,
    )


def _rnn_images(
    weights: CellWeights, x: Tensor, hidden: Tensor, _cell: Tensor
) -> tuple[list[Tensor], RNNStep]:
    step = rnn_step(weights, x, hidden)
    pre_activation = step.hidden_transform + step.input_transform
    return [hidden, step.hidden_transform, pre_activation, step.hidden], step


def _gru_images(
    weights: CellWeights, x: Tensor, hidden: Tensor, _cell: Tensor
) -> tuple[list[Tensor], GRUStep]:
    step = gru_step(weights, x, hidden)
    # GRUStep keeps the candidate only after tanh; its input block W_in x + b_in is recomputed.
    candidate_input = (x @ weights.weight_ih.T + weights.bias_ih).chunk(3, dim=-1)[2]
    pre_activation = step.reset_hidden_candidate_transform + candidate_input
    images = [
        hidden,
        step.hidden_candidate_transform,
        step.reset_hidden_candidate_transform,
        pre_activation,
        step.candidate,
        step.candidate_share,
        step.hidden,
    ]
    return images, step


def _lstm_images(
    weights: CellWeights, x: Tensor, hidden: Tensor, cell: Tensor
) -> tuple[list[Tensor], LSTMStep]:
    step = lstm_step(weights, x, hidden, cell)
    images = [
        hidden,
        step.candidate,
        step.added_cell,
        step.kept_cell,
        step.cell,
        torch.tanh(step.cell),
        step.hidden,
    ]
    return images, step


_OPERATION_IMAGES = {"rnn": _rnn_images, "gru": _gru_images, "lstm": _lstm_images}


@torch.no_grad()
def square_journeys(
    model: RecurrentClassifier, planes: Sequence[Plane]
) -> tuple[tuple[Journey, ...], ...]:
    """The last layer's journeys through JOURNEY_SQUARES: per direction (planes: one each), one
    journey per square. The backward direction reads each square reversed.

    The classifier reads the layer's outputs at the last point: there the forward direction has
    read the whole square, the backward one only its last corner (its first step).
    """
    recurrent = model.recurrent
    squares = torch.as_tensor(
        CORNERS[np.array([order for _, order in JOURNEY_SQUARES])], dtype=torch.float32
    )  # (S, L, F)
    length = squares.shape[1]
    lengths = torch.full((len(squares),), length)
    last_run = unroll_layers(recurrent, squares, lengths, model.packed)[-1]
    read = last_run.outputs[:, -1].double().numpy()  # (S, D * H): what the classifier reads
    weight = model.classifier.weight.detach().double().numpy()[0]
    logits = read @ weight + float(model.classifier.bias.detach().double()[0])
    hidden_dim = recurrent.hidden_size
    directions = []
    for direction, plane in enumerate(planes):
        reverse = direction == 1
        weights = CellWeights.from_layer(recurrent, recurrent.num_layers - 1, reverse=reverse)
        block = slice(direction * hidden_dim, (direction + 1) * hidden_dim)
        journeys = []
        for square, (label, order) in enumerate(JOURNEY_SQUARES):
            corners = tuple(CORNER_NAMES[index] for index in order)
            inputs = last_run.inputs[square]
            # The rest of the logit: the bias and every other direction at its actual state.
            others = logits[square] - read[square, block] @ weight[block]
            reading = Reading(
                step=0 if reverse else length - 1,
                weights=plane.components @ weight[block],
                bias=float(plane.mean @ weight[block] + others),
            )
            if reverse:
                inputs, corners = inputs.flip(0), corners[::-1]
            journeys.append(grid_journey(weights, inputs, label, corners, plane, reading))
        directions.append(tuple(journeys))
    return tuple(directions)


@dataclass(frozen=True)
class HiddenSpace:
    """Everything the hidden-space figures of a recurrent variant draw, computed once.

    states: (N, L, D) the last layer's output after each step of each test sequence (D is
    H, or 2 * H side by side when bidirectional); real: (N, L) True at real steps;
    plane: where states are drawn, holding the classifier's direction so the boundary is exact;
    noise_free_states: (8, D) the final states of NOISE_FREE, in its (start, direction) order;
    input_planes: per direction, the first layer's plane, where the corners are transformed;
    journeys: per direction, the last layer's journey through each of JOURNEY_SQUARES.
    """

    states: np.ndarray
    real: np.ndarray
    plane: Plane
    noise_free_states: np.ndarray
    input_planes: tuple[Plane, ...]
    journeys: tuple[tuple[Journey, ...], ...]


def hidden_space(model: RecurrentClassifier, test: Squares) -> HiddenSpace:
    """Run the test squares and the noise-free ones through `model`'s layers with the cells.

    Planes are fitted on the test sequences' states at their real steps.
    """
    sequences = torch.as_tensor(test.points, dtype=torch.float32)
    real = step_mask(test.lengths, test.points.shape[1])
    runs = unroll_layers(model.recurrent, sequences, torch.as_tensor(test.lengths), model.packed)
    states = runs[-1].outputs.numpy()
    normal = model.classifier.weight.detach().double().numpy()[0]
    squares = torch.as_tensor(NOISE_FREE.reshape(-1, *CLOCKWISE_FROM_A.shape), dtype=torch.float32)
    lengths = torch.full((len(squares),), squares.shape[1])
    noise_free_runs = unroll_layers(model.recurrent, squares, lengths, model.packed)

    def direction_planes(run: LayerRun) -> list[Plane]:
        return [fit_plane(direction.hidden.numpy()[real]) for direction in run.directions]

    return HiddenSpace(
        states=states,
        real=real,
        plane=fit_plane(states[real], normal),
        noise_free_states=noise_free_runs[-1].outputs[:, -1].numpy(),
        input_planes=tuple(direction_planes(runs[0])),
        journeys=square_journeys(model, direction_planes(runs[-1])),
    )
