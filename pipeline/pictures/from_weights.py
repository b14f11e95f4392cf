"""Every number the pictures draw, computed from a trained variant's weights (torch).

A recurrent variant's `HiddenSpace` is recomputed from the trained weights with the
from-scratch cells of `pipeline.library.cells`, so every intermediate is available: the test
and noise-free squares run through every layer, the planes they are drawn in, the
classifier's decision over them, the corners under the input transform, and the journeys of
the hidden state through each operation of the cell. A Conv1d variant's `ConvSpace` holds its
filters and the edge features they compute. (A variant on digits gets its `DigitsSpace` from
`pipeline.pictures.digits_numbers`.) Computed before any drawing: the pictures only read
them.
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
from pipeline.library.models import ConvClassifier, RecurrentClassifier
from pipeline.library.squares import CORNER_NAMES, CORNERS, NOISE_FREE, Squares, step_mask
from pipeline.library.training import (
    LabelledSequences,
    evaluate,
    predict_proba,
)
from pipeline.pictures.conv_space import ConvSpace
from pipeline.pictures.hidden_space import CLOCKWISE_FROM_A, INPUT_BLOCKS, HiddenSpace
from pipeline.pictures.journeys import (
    GATE_FIELDS,
    JOURNEY_SQUARES,
    OPERATIONS,
    DirectionJourneys,
    Journey,
    Reading,
    grid_lines,
)
from pipeline.pictures.padding_space import DirectionTrace, PaddingSpace, VariantTrace
from pipeline.pictures.planes import Boundary, Plane, fit_plane

#: Grid points per side on which the decision boundary's probabilities are sampled.
BOUNDARY_RESOLUTION = 101

Step = RNNStep | GRUStep | LSTMStep


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


def boundary_over(classifier: nn.Linear, plane: Plane) -> Boundary:
    """P(clockwise) over the view of `plane` the figures draw: its extent plus 10%."""
    limit = 1.1 * plane.extent
    coordinates = np.linspace(-limit, limit, BOUNDARY_RESOLUTION)
    return Boundary(limit, coordinates, boundary_probabilities(classifier, plane, coordinates))


@torch.no_grad()
def transformed_corners(weights: CellWeights) -> tuple[Tensor, ...]:
    """The corners A, B, C, D (4, 2) mapped by W_ih x + b_ih: one (4, H) block per gate.

    Blocks follow torch's order (see INPUT_BLOCKS); they are what each gate adds for a corner.
    """
    corners = torch.as_tensor(CLOCKWISE_FROM_A, dtype=weights.weight_ih.dtype)
    transform = corners @ weights.weight_ih.T + weights.bias_ih
    return transform.chunk(len(INPUT_BLOCKS[weights.kind]), dim=-1)


def input_corners(
    recurrent: nn.RNNBase, planes: Sequence[Plane]
) -> tuple[tuple[np.ndarray, ...], ...]:
    """Per direction (planes: one each), the corners (4, 2) as each gate block of the first
    layer's W_ih x + b_ih maps them, in the direction's plane."""
    return tuple(
        tuple(
            plane.project(block.double().numpy())
            for block in transformed_corners(
                CellWeights.from_layer(recurrent, 0, reverse=name == "backward")
            )
        )
        for name, plane in zip(direction_names(recurrent), planes, strict=True)
    )


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


def direction_names(recurrent: nn.RNNBase) -> tuple[str, ...]:
    """The directions a recurrent layer reads in: forward, then backward if bidirectional."""
    return ("forward", "backward") if recurrent.bidirectional else ("forward",)


@torch.no_grad()
def square_journeys(
    model: RecurrentClassifier, planes: Sequence[Plane]
) -> tuple[DirectionJourneys, ...]:
    """The last layer's journeys through JOURNEY_SQUARES: per direction (planes: one each), one
    journey per square, with the view of each panel. The backward direction reads each square
    reversed.

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
    for direction, (name, plane) in enumerate(zip(direction_names(recurrent), planes, strict=True)):
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
        directions.append(DirectionJourneys.of(name, journeys))
    return tuple(directions)


def unroll_test_squares(
    model: RecurrentClassifier, test: Squares
) -> tuple[list[LayerRun], np.ndarray]:
    """Every layer of `model` over the test squares (as the model reads them), and (N, L) True
    at their real steps."""
    sequences = torch.as_tensor(test.points, dtype=torch.float32)
    real = step_mask(test.lengths, test.points.shape[1])
    runs = unroll_layers(model.recurrent, sequences, torch.as_tensor(test.lengths), model.packed)
    return runs, real


def decision_plane(model: RecurrentClassifier, states: np.ndarray) -> Plane:
    """The plane the hidden-state figures draw states (M, D) in: it holds the classifier's
    direction, so the decision boundary is exact in it."""
    return fit_plane(states, model.classifier.weight.detach().double().numpy()[0])


def hidden_space(model: RecurrentClassifier, test: Squares) -> HiddenSpace:
    """Run the test squares and the noise-free ones through `model`'s layers with the cells.

    Planes are fitted on the test sequences' states at their real steps.
    """
    recurrent = model.recurrent
    runs, real = unroll_test_squares(model, test)
    states = runs[-1].outputs.numpy()
    squares = torch.as_tensor(NOISE_FREE.reshape(-1, *CLOCKWISE_FROM_A.shape), dtype=torch.float32)
    lengths = torch.full((len(squares),), squares.shape[1])
    noise_free_runs = unroll_layers(recurrent, squares, lengths, model.packed)

    def direction_planes(run: LayerRun) -> list[Plane]:
        return [fit_plane(direction.hidden.numpy()[real]) for direction in run.directions]

    plane = decision_plane(model, states[real])
    input_planes = tuple(direction_planes(runs[0]))
    return HiddenSpace(
        kind=type(recurrent).__name__.lower(),
        layers=recurrent.num_layers,
        directions=direction_names(recurrent),
        labels=test.labels,
        lengths=test.lengths,
        states=states,
        real=real,
        plane=plane,
        boundary=boundary_over(model.classifier, plane),
        noise_free_states=noise_free_runs[-1].outputs[:, -1].numpy(),
        input_planes=input_planes,
        input_corners=input_corners(recurrent, input_planes),
        journeys=square_journeys(model, direction_planes(runs[-1])),
    )


def gate_means(model: RecurrentClassifier, test: Squares) -> dict[str, dict[str, list[float]]]:
    """Per direction of the last layer, each gate (by symbol: r, z or i, f, o) at each step,
    averaged over the test squares that have that step and the hidden units; {} per
    direction for an RNN."""
    runs, real = unroll_test_squares(model, test)
    means: dict[str, dict[str, list[float]]] = {}
    for name, step in zip(direction_names(model.recurrent), runs[-1].directions, strict=True):
        means[name] = {}
        for symbol, field in GATE_FIELDS.items():
            if hasattr(step, field):
                values = getattr(step, field).double().numpy()
                means[name][symbol] = [
                    float(values[real[:, t], t].mean()) for t in range(values.shape[1])
                ]
    return means


def padding_space(
    packed: tuple[str, RecurrentClassifier], padded: tuple[str, RecurrentClassifier], test: Squares
) -> PaddingSpace:
    """The first of the shortest test squares read by a packed variant and by its padded twin
    (each a name and its model), with their accuracies on the test split and its short squares.

    ValueError unless the test split holds squares shorter than its longest.
    """
    padded_length = test.points.shape[1]
    short = np.flatnonzero(test.lengths < padded_length)
    if len(short) == 0:
        raise ValueError("the test split has no square shorter than its longest: nothing is padded")
    square = int(np.flatnonzero(test.lengths == test.lengths.min())[0])
    length = int(test.lengths[square])
    variants = tuple(
        _variant_trace(name, model, test, square, short) for name, model in (packed, padded)
    )
    return PaddingSpace(
        seq_id=int(test.seq_ids[square]),
        label=int(test.labels[square]),
        points=test.points[square, :length].copy(),
        padded_length=padded_length,
        test_count=len(test),
        short_count=len(short),
        variants=variants,
    )


def _variant_trace(
    name: str, model: RecurrentClassifier, test: Squares, square: int, short: np.ndarray
) -> VariantTrace:
    """Variant `name` reading test square `square`, and its accuracy on all and `short` ones."""
    recurrent = model.recurrent
    sequences = torch.as_tensor(test.points, dtype=torch.float32)
    length, padded_length = int(test.lengths[square]), sequences.shape[1]
    real = step_mask(test.lengths, padded_length)
    run = unroll_layers(recurrent, sequences, torch.as_tensor(test.lengths), model.packed)[-1]
    # Packed, a layer reads the real points and is read at the last; padded, every step and
    # the padded end.
    steps_read = length if model.packed else padded_length
    directions = []
    for name_of, direction in zip(direction_names(recurrent), run.directions, strict=True):
        hidden = direction.hidden.double().numpy()  # (N, L, H)
        plane = fit_plane(hidden[real])
        steps = np.arange(steps_read) if name_of == "forward" else np.arange(steps_read)[::-1]
        start = np.zeros((1, hidden.shape[2]))
        states = np.concatenate([start, hidden[square, steps]])
        directions.append(
            DirectionTrace(
                name=name_of,
                plane=plane,
                states=plane.project(states),
                steps=steps,
                padding=steps >= length,
                read=int(np.flatnonzero(steps == steps_read - 1)[0]) + 1,
            )
        )
    data = LabelledSequences.from_squares(test)
    return VariantTrace(
        name=name,
        packed=model.packed,
        directions=tuple(directions),
        probability=float(predict_proba(model, data)[square]),
        accuracy=_accuracy(model, test),
        short_accuracy=_accuracy(model, test.take(short)),
    )


def _accuracy(model: RecurrentClassifier, squares: Squares) -> float:
    """The share of `squares` classified right, as the evaluate stage computes it."""
    confusion = evaluate(model, LabelledSequences.from_squares(squares)).confusion
    return float(confusion.trace() / confusion.sum())


@torch.no_grad()
def edge_features(model: ConvClassifier, points: np.ndarray) -> np.ndarray:
    """ReLU(conv) of sequences (N, L, 2): (N, C, L - 1), one feature per filter and segment.

    Segment t is the pair of points t and t + 1: the edge the filter sees there.
    """
    sequences = torch.as_tensor(points, dtype=torch.float32).transpose(1, 2)
    return torch.relu(model.conv(sequences)).numpy()


def conv_space(model: ConvClassifier, test: Squares) -> ConvSpace:
    """The filters of a Conv1d variant and the edge features of the test sequences."""
    features = edge_features(model, test.points)  # (N, C, L - 1)
    weights = model.classifier.weight.detach().double().numpy()
    return ConvSpace(
        kernels=model.conv.weight.detach().double().numpy(),
        biases=model.conv.bias.detach().double().numpy(),
        features=features,
        segment_weights=weights.reshape(features.shape[1:]),  # flatten: filter, then segment
        labels=test.labels,
    )
