import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline.cells import CellWeights, gru_step
from pipeline.history import History
from pipeline.journey import OPERATIONS, fit_plane, grid_lines, hidden_space
from pipeline.models import build_model
from pipeline.plots import edge_features, plot_variant
from pipeline.squares import NOISE_FREE, Squares, generate_squares, step_mask

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = {"rtol": 0, "atol": 1e-6}
HISTORY = History(
    epochs=np.arange(1, 6),
    train_loss=np.array([0.7, 0.5, 0.3, 0.2, 0.1]),
    val_loss=np.array([0.65, 0.5, 0.35, 0.25, 0.2]),
    train_accuracy=np.array([0.5, 0.7, 0.9, 0.95, 1.0]),
    val_accuracy=np.array([0.55, 0.7, 0.85, 0.95, 0.97]),
)
# name: arch, hidden_dim, num_layers, bidirectional, packed, variable_len
VARIANTS = {
    "rnn": ("rnn", 2, 1, False, False, False),
    "gru": ("gru", 2, 1, False, False, False),
    "lstm": ("lstm", 2, 1, False, False, False),
    "rnn_stacked": ("rnn", 2, 2, False, False, False),
    "rnn_bidirectional": ("rnn", 2, 1, True, False, False),
    "lstm_packed": ("lstm", 2, 1, True, True, True),
    "gru_hidden3": ("gru", 3, 1, False, False, False),
    "conv1d": ("conv1d", 1, 1, False, False, False),
}
RECURRENT = [name for name in VARIANTS if name != "conv1d"]
RECURRENT_FILES = [
    "hidden_states.png",
    "journey.gif",
    "journey.png",
    "loss_curves.png",
    "noise_free_states.png",
    "transformed_inputs.png",
]
BIDIRECTIONAL_FILES = [
    "hidden_states.png",
    "journey.gif",
    "journey_backward.png",
    "journey_forward.png",
    "loss_curves.png",
    "noise_free_states.png",
    "transformed_inputs.png",
]
CONV_FILES = ["conv_edges.png", "conv_filters.png", "loss_curves.png"]
EXPECTED_FILES = {
    name: BIDIRECTIONAL_FILES if VARIANTS[name][3] else RECURRENT_FILES for name in RECURRENT
} | {"conv1d": CONV_FILES}
# Drawing a recurrent variant takes seconds: the fast suite draws one plain, one bidirectional
# packed variable-length and the conv variant; the computations of all are checked fast.
DRAWN_FAST = ("rnn", "lstm_packed", "conv1d")


def variant(name: str) -> tuple[nn.Module, Squares]:
    """An untrained model of the variant and small test squares of its kind."""
    arch, hidden_dim, num_layers, bidirectional, packed, variable_len = VARIANTS[name]
    model = build_model(arch, hidden_dim, num_layers, bidirectional, packed, seed=0).eval()
    return model, generate_squares(24, 0.1, seed=3, variable_len=variable_len)


def draw(name: str, directory: Path) -> list[Path]:
    model, squares = variant(name)
    return plot_variant(model, squares, HISTORY, directory)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Each variant's files, drawn once per test session, with every warning an error (a
    missing glyph, say)."""
    paths = {}

    def files_of(name: str) -> list[Path]:
        if name not in paths:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                paths[name] = draw(name, tmp_path_factory.mktemp(name))
        return paths[name]

    return files_of


@torch.no_grad()
def torch_outputs(model: nn.Module, squares) -> torch.Tensor:
    """(N, L, D) outputs of the model's own recurrent layer, packed when the model packs."""
    sequences = torch.as_tensor(squares.points, dtype=torch.float32)
    if not model.packed:
        return model.recurrent(sequences)[0]
    packed = pack_padded_sequence(
        sequences, torch.as_tensor(squares.lengths), batch_first=True, enforce_sorted=False
    )
    return pad_packed_sequence(
        model.recurrent(packed)[0], batch_first=True, total_length=sequences.shape[1]
    )[0]


def noise_free_squares() -> Squares:
    """The 8 noise-free squares in NOISE_FREE's order: starts A..D, each ccw then cw."""
    points = NOISE_FREE.reshape(8, 4, 2).astype(float)
    return Squares(np.arange(8), points, np.full(8, 4), np.tile([0, 1], 4))


@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=() if name in DRAWN_FAST else pytest.mark.slow) for name in VARIANTS],
)
def test_each_variant_writes_its_figures(drawn, name: str) -> None:
    paths = drawn(name)

    assert [path.name for path in paths] == EXPECTED_FILES[name]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == path.suffix[1:].upper()
            assert min(image.size) >= 200


@pytest.mark.parametrize("name", ["rnn", "lstm_packed"])
def test_gif_has_one_frame_per_operation(drawn, name: str) -> None:
    gif = next(path for path in drawn(name) if path.suffix == ".gif")
    kind = VARIANTS[name][0]

    with Image.open(gif) as image:
        n_frames = image.n_frames

    assert n_frames == 4 * len(OPERATIONS[kind])


def test_figures_are_byte_identical_when_drawn_again(drawn, tmp_path) -> None:
    first = drawn("rnn")

    again = draw("rnn", tmp_path)

    for old, new in zip(first, again, strict=True):
        assert old.read_bytes() == new.read_bytes(), old.name


def test_a_new_process_with_another_rc_file_draws_the_same_bytes(drawn, tmp_path) -> None:
    first = drawn("rnn")
    rc_file = tmp_path / "matplotlibrc"
    rc_file.write_text("font.size: 20\nlines.linewidth: 5\nsavefig.dpi: 300\nfont.family: serif\n")
    script = (
        "import sys; from pathlib import Path; from tests.test_plots import draw; "
        "draw('rnn', Path(sys.argv[1]))"
    )

    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "out")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "MATPLOTLIBRC": str(rc_file)},
        check=True,
        timeout=120,
    )

    for old in first:
        assert old.read_bytes() == (tmp_path / "out" / old.name).read_bytes(), old.name


def test_pngs_carry_no_version_string(drawn) -> None:
    png = drawn("conv1d")[0]

    assert b"matplotlib" not in png.read_bytes().lower()


@pytest.mark.parametrize("name", RECURRENT)
def test_hidden_states_equal_the_layers_own_outputs(name: str) -> None:
    model, squares = variant(name)

    space = hidden_space(model, squares)

    real = step_mask(squares.lengths, squares.points.shape[1])
    expected = torch_outputs(model, squares).numpy()
    np.testing.assert_allclose(space.states[real], expected[real], **TOLERANCE)
    np.testing.assert_array_equal(space.real, real)


@pytest.mark.parametrize("name", RECURRENT)
def test_noise_free_states_are_the_layers_output_at_the_last_corner(name: str) -> None:
    model, _ = variant(name)

    space = hidden_space(model, generate_squares(4, 0.1, seed=0, variable_len=False))

    expected = torch_outputs(model, noise_free_squares())[:, -1].numpy()
    np.testing.assert_allclose(space.noise_free_states, expected, **TOLERANCE)


@pytest.mark.parametrize("name", RECURRENT)
def test_journey_ends_at_the_layers_own_output(name: str) -> None:
    model, squares = variant(name)
    hidden_dim = VARIANTS[name][1]

    journeys = hidden_space(model, squares).journeys

    # Noise-free square 1 is A, B, C, D clockwise; its outputs (4, D) step by step.
    outputs = torch_outputs(model, noise_free_squares())[1].numpy()
    forward = journeys[0]
    np.testing.assert_allclose(forward.hidden[1:], outputs[:, :hidden_dim], **TOLERANCE)
    if model.recurrent.bidirectional:
        backward = journeys[1]
        assert backward.corners == ("D", "C", "B", "A")
        # The backward direction has read D after its first step: that is output position 3.
        np.testing.assert_allclose(backward.hidden[1:], outputs[::-1, hidden_dim:], **TOLERANCE)
    for journey in journeys:
        plane = journey.plane
        np.testing.assert_allclose(journey.states[:, 0], plane.project(journey.hidden[:-1]))
        np.testing.assert_allclose(journey.states[:, -1], plane.project(journey.hidden[1:]))


@torch.no_grad()
def test_journey_moves_the_grid_through_each_operation_of_the_cell() -> None:
    model, squares = variant("gru")
    weights = CellWeights.from_layer(model.recurrent, 0)

    journey = hidden_space(model, squares).journeys[0]

    # Step 2 reads B = (-1, 1), starting from the grid itself (the plane is the hidden space).
    grid = grid_lines(journey.plane.extent)
    step = gru_step(
        weights, torch.tensor([[-1.0, 1.0]]), torch.as_tensor(grid.reshape(-1, 2)).float()
    )
    operations = journey.operations
    for index, expected in (
        (operations.index(r"$h$"), grid.reshape(-1, 2)),
        (operations.index(r"$r \odot t_{hn}$"), step.reset_hidden_candidate_transform),
        (operations.index(r"$n = \tanh(r \odot t_{hn} + t_{xn})$"), step.candidate),
        (operations.index(r"$h' = (1 - z) \odot n + z \odot h$"), step.hidden),
    ):
        np.testing.assert_allclose(
            journey.grids[1, index].reshape(-1, 2), np.asarray(expected), **TOLERANCE
        )


@pytest.mark.parametrize("name", ["rnn_bidirectional", "gru_hidden3"])
@torch.no_grad()
def test_decision_boundary_is_exact_in_the_plane_of_a_wider_hidden_space(name: str) -> None:
    model, squares = variant(name)

    space = hidden_space(model, squares)

    final = space.states[np.arange(len(squares)), squares.lengths - 1]
    lifted = space.plane.lift(space.plane.project(final))
    drawn_logits = model.classifier(torch.as_tensor(lifted).float())
    model_logits = model(torch.as_tensor(squares.points).float(), torch.as_tensor(squares.lengths))
    torch.testing.assert_close(drawn_logits, model_logits, rtol=0, atol=1e-5)


def test_plane_of_two_dimensions_is_the_hidden_space_itself() -> None:
    states = np.random.default_rng(0).normal(size=(50, 2))

    plane = fit_plane(states)

    np.testing.assert_array_equal(plane.project(states), states)
    assert plane.axis_labels == ("$h_0$", "$h_1$")


def test_plane_of_more_dimensions_is_the_principal_one() -> None:
    spread = np.random.default_rng(0).normal(size=(500, 3)) * [0.2, 3.0, 1.0]

    plane = fit_plane(spread + 5.0)

    np.testing.assert_allclose(np.abs(plane.components), [[0, 1, 0], [0, 0, 1]], atol=0.05)
    np.testing.assert_allclose(plane.components @ plane.components.T, np.eye(2), atol=1e-12)
    assert plane.explained[0] > plane.explained[1]
    assert plane.axis_labels[0].startswith("PC1 (")


def test_a_hidden_space_of_one_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="hidden_dim >= 2, got 1"):
        fit_plane(np.zeros((5, 1)))


@torch.no_grad()
def test_edge_features_are_what_the_conv_classifier_reads() -> None:
    model, squares = variant("conv1d")

    features = edge_features(model, squares.points)

    assert features.shape == (len(squares), 1, 3)
    torch.testing.assert_close(
        model.classifier(torch.as_tensor(features).flatten(1)),
        model(torch.as_tensor(squares.points).float()),
        **TOLERANCE,
    )


def test_plot_variant_refuses_other_models(tmp_path) -> None:
    with pytest.raises(TypeError, match="RecurrentClassifier or ConvClassifier, got Linear"):
        plot_variant(nn.Linear(2, 1), generate_squares(4, 0.1, 0, False), HISTORY, tmp_path)
