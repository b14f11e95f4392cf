"""The pictures of a variant: what they compute (against torch's own layers), which files
they are, that they say what they show, that their text stays readable, and that they come
out byte for byte the same."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from matplotlib.text import Text
from PIL import Image
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline.library.cells import CellWeights, gru_step, unroll
from pipeline.library.history import History
from pipeline.library.models import build_model
from pipeline.library.settings import ModelSpec
from pipeline.library.squares import CORNERS, NOISE_FREE, Squares, generate_squares, step_mask
from pipeline.pictures.canvas import (
    DPI,
    MIN_TEXT_PX,
    check_text_size,
    description_of,
    new_figure,
    render,
    style,
)
from pipeline.pictures.from_weights import edge_features, hidden_space
from pipeline.pictures.journey import (
    FRAME_MS,
    JOURNEY_PANEL,
    LAST_FRAME_MS,
    SQUARE_HEAD,
    PictureLayout,
    picture_layout,
)
from pipeline.pictures.journey_panel import SHADE_ALPHA
from pipeline.pictures.journeys import JOURNEY_SQUARES, OPERATIONS, grid_lines
from pipeline.pictures.planes import fit_plane
from pipeline.pictures.plots import plot_variant
from pipeline.pictures.registry import picture_names, pictures
from pipeline.pictures.shared import LABEL_COLOURS, Subject

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
# Drawing a recurrent variant takes seconds: the fast suite draws one plain, one bidirectional
# packed variable-length and the conv variant; the computations of all are checked fast.
DRAWN_FAST = ("rnn", "lstm_packed", "conv1d")


def spec_of(name: str) -> ModelSpec:
    return ModelSpec(*VARIANTS[name][:5])


def variant(name: str) -> tuple[nn.Module, Squares]:
    """An untrained model of the variant and small test squares of its kind."""
    model = build_model(spec_of(name), seed=0).eval()
    return model, generate_squares(24, 0.1, seed=3, variable_len=VARIANTS[name][5])


def draw(name: str, directory: Path) -> list[Path]:
    model, squares = variant(name)
    return plot_variant(name, spec_of(name), model, squares, HISTORY, directory)


def drawn_height_px(text: Text) -> float:
    """How high `text`'s smallest characters are drawn, in pixels at its figure's DPI: its font
    size in points * DPI / 72, times 0.7 (mathtext's shrink) if it holds a sub- or superscript
    between $ signs."""
    maths = text.get_text().split("$")[1::2]
    shrink = 0.7 if any("_" in part or "^" in part for part in maths) else 1.0
    return text.get_fontsize() * text.figure.dpi / 72 * shrink


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Each variant's files, drawn once per test session, with every warning an error (a
    missing glyph, say), and every text matplotlib draws on the way: (its string, its height
    in pixels (drawn_height_px), the size in pixels of the canvas it was drawn on)."""
    paths, texts = {}, {}

    def files_of(name: str) -> tuple[list[Path], list[tuple[str, float, tuple[int, int]]]]:
        if name not in paths:
            recorded = []
            draw_text = Text.draw

            def recording_draw(text: Text, renderer) -> None:
                if text.get_visible() and text.get_text().strip():
                    canvas = text.figure.canvas.get_width_height()
                    recorded.append((text.get_text(), drawn_height_px(text), canvas))
                draw_text(text, renderer)

            with warnings.catch_warnings(), pytest.MonkeyPatch.context() as patch:
                warnings.simplefilter("error")
                patch.setattr(Text, "draw", recording_draw)
                paths[name] = draw(name, tmp_path_factory.mktemp(name))
            texts[name] = recorded
        return paths[name], texts[name]

    return files_of


def fast_or_slow(names) -> list:
    return [
        pytest.param(name, marks=() if name in DRAWN_FAST else pytest.mark.slow) for name in names
    ]


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


@pytest.mark.parametrize("name", fast_or_slow(VARIANTS))
def test_each_variant_writes_the_pictures_of_its_kind_with_no_text_under_10_px(
    drawn, name: str
) -> None:
    """How this knows the text size: while the variant was drawn, every Text that matplotlib
    drew (titles, labels, tick labels, legends, annotations, also those blitted onto the GIF
    frames and the journey's panels) was recorded with its font size at its figure's DPI,
    sub- and superscripts at 70%; and each file's pixel size is the size of a canvas those
    texts were drawn on, so the file holds them at exactly that size (1:1, not scaled)."""
    paths, texts = drawn(name)

    assert [path.name for path in paths] == sorted(picture_names(spec_of(name)))  # the registry's
    smallest = min(texts, key=lambda text: text[1])
    assert smallest[1] >= MIN_TEXT_PX >= 10, smallest
    canvases = {canvas for _, _, canvas in texts}
    for path in paths:
        with Image.open(path) as image:
            assert image.format == path.suffix[1:].upper()
            assert image.size in canvases, path.name
            assert min(image.size) >= 200


def test_each_kind_of_variant_gets_its_pictures_and_a_journey_per_direction() -> None:
    """What the plot stage writes and the report shows, from the registry alone: no file twice,
    a PNG and a GIF of the journey per direction, and a bidirectional variant the one-way
    variant's pictures but for that; a Conv1d variant no hidden-state picture; all, the curves."""
    one_way, two_way, conv = (
        picture_names(spec_of(name)) for name in ("rnn", "lstm_packed", "conv1d")
    )

    for names in (one_way, two_way, conv):
        assert len(set(names)) == len(names), names
        assert {Path(name).suffix for name in names} <= {".png", ".gif"}
        assert "loss_curves.png" in names
    journeys = {name for name in one_way if name.startswith("journey")}
    assert journeys == {"journey.png", "journey.gif"}
    split = {
        f"journey_{way}{suffix}" for way in ("forward", "backward") for suffix in (".png", ".gif")
    }
    assert {name for name in two_way if name.startswith("journey")} == split
    assert set(two_way) - split == set(one_way) - journeys
    assert set(conv) & set(one_way) == {"loss_curves.png"}


@pytest.mark.parametrize(
    ("text", "points", "allowed"),
    [
        ("plain", 7.2, True),
        ("plain", 7.0, False),
        ("$h_0$", 10.3, True),  # its subscript is drawn at 70%: 10.0 px
        ("$h_0$", 10.0, False),
        ("$h'$", 7.2, True),  # no script
    ],
)
def test_a_figure_with_text_under_10_px_is_refused(text: str, points: float, allowed: bool) -> None:
    figure = new_figure(2, 1)
    figure.text(0.5, 0.5, text, fontsize=points)
    figure.canvas.draw()

    if allowed:
        check_text_size(figure)
        assert render(figure).size == (200, 100)
    else:
        with pytest.raises(ValueError, match="px high at 1:1; every text must be at least 10 px"):
            render(figure)


@pytest.mark.parametrize("name", ["rnn", "lstm_packed"])
def test_gif_has_one_frame_per_operation_and_holds_the_last(drawn, name: str) -> None:
    gifs = [path for path in drawn(name)[0] if path.suffix == ".gif"]
    kind = VARIANTS[name][0]

    assert len(gifs) == (2 if VARIANTS[name][3] else 1)  # bidirectional: each direction
    for gif in gifs:
        with Image.open(gif) as image:
            durations = []
            for frame in range(image.n_frames):
                image.seek(frame)
                durations.append(image.info["duration"])
        assert len(durations) == 4 * len(OPERATIONS[kind])
        assert durations[0] == FRAME_MS
        assert durations[-1] == LAST_FRAME_MS == max(durations)


@pytest.mark.parametrize("name", DRAWN_FAST)
def test_every_picture_names_its_variant_and_describes_itself(drawn, name: str) -> None:
    for path in drawn(name)[0]:
        description = description_of(path)

        assert description.startswith(f"{name} ("), path.name
        assert "$" not in description, path.name  # words for a reader, not mathtext


def separating(name: str) -> nn.Module:
    """An untrained model of the variant (one-way) whose classifier reads the clockwise journey
    square as clockwise and the counter-clockwise one as counter-clockwise: its boundary runs
    halfway between their final hidden states, through the panels where it reads them."""
    model, _ = variant(name)
    labels = np.array([label for label, _ in JOURNEY_SQUARES])
    points = CORNERS[[order for _, order in JOURNEY_SQUARES]].astype(float)
    final = torch_outputs(model, Squares(np.arange(2), points, np.full(2, 4), labels))[:, -1]
    clockwise, counter_clockwise = final[labels.argmax()], final[labels.argmin()]
    normal = clockwise - counter_clockwise
    with torch.no_grad():
        model.classifier.weight.copy_(normal[None])
        model.classifier.bias.fill_(-normal @ (clockwise + counter_clockwise) / 2)
    return model


def showing(colour: str, pixels: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Which pixels (..., 3) show `colour` at `alpha` over white, to within Agg's rounding."""
    expected = 255 * (1 - alpha) + alpha * 255 * np.array(to_rgb(colour))
    return (np.abs(pixels - expected) <= 3).all(axis=-1)


def panel_pixels(
    pixels: np.ndarray, layout: PictureLayout, square: int, step: int, operation: int, window
) -> tuple[np.ndarray, np.ndarray]:
    """The pixels (k, 3) of a journey picture's panel, 2 px inside its frame, and where their
    centres lie in the panel's plane (k, 2), given its window [[x0, x1], [y0, y1]]."""
    left, top = layout.column_left(operation) * DPI, layout.rows[square][step] * DPI
    size = JOURNEY_PANEL * DPI
    rows, columns = np.mgrid[
        int(top) + 2 : int(top + size) - 2, int(left) + 2 : int(left + size) - 2
    ]
    (x0, x1), (y0, y1) = window
    x = x0 + (columns + 0.5 - left) / size * (x1 - x0)
    y = y1 - (rows + 0.5 - top) / size * (y1 - y0)
    return pixels[rows, columns].reshape(-1, 3), np.stack([x, y], axis=-1).reshape(-1, 2)


@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_journeys_show_both_squares_and_the_decision_boundary(name: str, tmp_path) -> None:
    """Read from the pixels of journey.png: each square's heading in its label's colour; in the
    panel where the classifier reads a square, the side it reads as clockwise shaded red and
    the other blue, split along the classifier's own boundary by a black line; in the other
    panels of that column, neither shading nor line."""
    spec = spec_of(name)
    space = hidden_space(separating(name), variant(name)[1])
    subject = Subject(f"{name} ({spec.describe()})", HISTORY, space)
    (entry,) = [entry for entry in pictures(spec) if entry.file_name == "journey.png"]
    with style():
        path = entry.write(subject, tmp_path)
    layout = picture_layout(subject, direction=0)
    with Image.open(path) as image:
        assert np.allclose(image.size, (layout.width * DPI, layout.height * DPI), atol=1)
        pixels = np.asarray(image.convert("RGB")).astype(float)

    journeys = space.journeys[0]
    for square, (journey, windows) in enumerate(
        zip(journeys.journeys, journeys.windows, strict=True)
    ):
        top = layout.square_tops[square]
        heading = pixels[round(top * DPI) : round((top + SQUARE_HEAD) * DPI)]
        assert showing(LABEL_COLOURS[journey.label], heading).sum() > 100
        assert not showing(LABEL_COLOURS[1 - journey.label], heading).any()
        read_step, last = journey.reading_panel
        (x0, x1) = windows[read_step, last, 0]
        pixels_per_unit = JOURNEY_PANEL * DPI / (x1 - x0)  # one size per column
        reading = journey.reading
        for step in range(len(journey.corners)):
            colours, points = panel_pixels(pixels, layout, square, step, last, windows[step, last])
            # Each pixel's signed distance from the boundary, in pixels: above 0 reads clockwise.
            distance = reading.logit(points) / np.linalg.norm(reading.weights) * pixels_per_unit
            clockwise = showing(LABEL_COLOURS[1], colours, SHADE_ALPHA)
            counter_clockwise = showing(LABEL_COLOURS[0], colours, SHADE_ALPHA)
            on_boundary = (colours[np.abs(distance) < 0.5] < 110).all(axis=-1)  # dark: drawn
            if step == read_step:
                assert clockwise.sum() > 500 and counter_clockwise.sum() > 500
                assert (distance[clockwise] > -1).all()
                assert (distance[counter_clockwise] < 1).all()
                assert on_boundary.mean() > 0.5
            else:
                assert not clockwise.any() and not counter_clockwise.any()
                assert on_boundary.mean() < 0.2


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm", "rnn_bidirectional"])
def test_journey_panels_have_one_size_per_operation_and_hold_what_they_show(name: str) -> None:
    model, squares = variant(name)

    for direction in hidden_space(model, squares).journeys:
        windows = direction.windows  # (S, L, O, 2, 2)

        sizes = windows[..., 1] - windows[..., 0]
        assert np.allclose(sizes, sizes[:1, :1, :, :1])  # per operation, square panels
        for journey, square_windows in zip(direction.journeys, windows, strict=True):
            low, high = square_windows[..., 0], square_windows[..., 1]  # (L, O, 2)
            assert (journey.grids.min(axis=(2, 3)) >= low - 1e-12).all()
            assert (journey.grids.max(axis=(2, 3)) <= high + 1e-12).all()
            assert (journey.states >= low).all() and (journey.states <= high).all()
        # The hidden state read in (the grid itself): the chapter's +-1.05, on the origin.
        assert (windows[:, :, 0] == [-1.05, 1.05]).all()


def test_figures_are_byte_identical_when_drawn_again(drawn, tmp_path) -> None:
    first = drawn("rnn")[0]

    again = draw("rnn", tmp_path)

    for old, new in zip(first, again, strict=True):
        assert old.read_bytes() == new.read_bytes(), old.name


def test_a_new_process_with_another_rc_file_draws_the_same_bytes(drawn, tmp_path) -> None:
    first = drawn("rnn")[0]
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
    png = drawn("conv1d")[0][0]

    assert b"matplotlib" not in png.read_bytes().lower()
    assert b"Software" not in png.read_bytes()


@pytest.mark.parametrize("name", RECURRENT)
def test_hidden_states_equal_the_layers_own_outputs(name: str) -> None:
    model, squares = variant(name)

    space = hidden_space(model, squares)

    real = step_mask(squares.lengths, squares.points.shape[1])
    expected = torch_outputs(model, squares).numpy()
    np.testing.assert_allclose(space.states[real], expected[real], **TOLERANCE)
    # Real: each sequence's first `length` steps, and no others.
    steps = np.arange(squares.points.shape[1])
    np.testing.assert_array_equal(space.real, steps < squares.lengths[:, None])


@pytest.mark.parametrize("name", RECURRENT)
def test_noise_free_states_are_the_layers_output_at_the_last_corner(name: str) -> None:
    model, _ = variant(name)

    space = hidden_space(model, generate_squares(4, 0.1, seed=0, variable_len=False))

    expected = torch_outputs(model, noise_free_squares())[:, -1].numpy()
    np.testing.assert_allclose(space.noise_free_states, expected, **TOLERANCE)


@pytest.mark.parametrize("name", RECURRENT)
def test_journeys_end_at_the_layers_own_outputs(name: str) -> None:
    model, squares = variant(name)
    hidden_dim = VARIANTS[name][1]

    journeys = hidden_space(model, squares).journeys

    assert len(journeys) == (2 if model.recurrent.bidirectional else 1)
    for square, (label, order) in enumerate(JOURNEY_SQUARES):
        points = NOISE_FREE.reshape(8, 4, 2)[[1, 2][square]].astype(float)  # ABCD cw, ADCB ccw
        assert (points == np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]])[list(order)]).all()
        outputs = torch_outputs(
            model, Squares(np.arange(1), points[None], np.full(1, 4), np.ones(1))
        )
        outputs = outputs[0].numpy()  # (4, D): the layer's output at each point
        forward = journeys[0].journeys[square]
        assert forward.label == label
        np.testing.assert_allclose(forward.hidden[1:], outputs[:, :hidden_dim], **TOLERANCE)
        if model.recurrent.bidirectional:
            backward = journeys[1].journeys[square]
            assert backward.corners == forward.corners[::-1]
            # The backward direction reads the last corner first: its step 1 is output 4.
            np.testing.assert_allclose(backward.hidden[1:], outputs[::-1, hidden_dim:], **TOLERANCE)
    for direction in journeys:
        for journey in direction.journeys:
            plane = journey.plane
            np.testing.assert_allclose(journey.states[:, 0], plane.project(journey.hidden[:-1]))
            np.testing.assert_allclose(journey.states[:, -1], plane.project(journey.hidden[1:]))


@pytest.mark.parametrize("name", ["rnn", "gru", "rnn_stacked", "rnn_bidirectional", "lstm_packed"])
@torch.no_grad()
def test_journeys_read_the_classifiers_logit_where_it_reads_the_state(name: str) -> None:
    model, squares = variant(name)
    corners = np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]], dtype=np.float32)
    sequences = torch.as_tensor(corners[[list(order) for _, order in JOURNEY_SQUARES]])

    journeys = hidden_space(model, squares).journeys

    logits = model(sequences, torch.full((len(sequences),), 4))[:, 0].numpy()
    for direction, step in zip(journeys, (3, 0), strict=False):  # backward: read after step 1
        for journey, logit in zip(direction.journeys, logits, strict=True):
            assert journey.reading.step == step
            drawn = journey.reading.logit(journey.states[step, -1])
            np.testing.assert_allclose(drawn, logit, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("gru", {"r": "reset_gate", "z": "update_gate"}),
        ("lstm", {"i": "input_gate", "f": "forget_gate", "o": "output_gate"}),
    ],
)
@torch.no_grad()
def test_journey_gates_are_the_cells_gates_at_the_actual_state(
    name: str, fields: dict[str, str]
) -> None:
    model, squares = variant(name)
    weights = CellWeights.from_layer(model.recurrent, 0)

    journey = hidden_space(model, squares).journeys[0].journeys[0]

    clockwise = torch.as_tensor(NOISE_FREE[0, 1][None], dtype=torch.float32)  # A, B, C, D
    steps = unroll(weights, clockwise)
    assert set(journey.gates) == set(fields)
    for gate, field in fields.items():
        np.testing.assert_allclose(journey.gates[gate], getattr(steps, field)[0], **TOLERANCE)


@torch.no_grad()
def test_journey_moves_the_grid_through_each_operation_of_the_cell() -> None:
    model, squares = variant("gru")
    weights = CellWeights.from_layer(model.recurrent, 0)

    journey = hidden_space(model, squares).journeys[0].journeys[0]

    # Step 2 reads B = (-1, 1), starting from the grid itself (the plane is the hidden space).
    grid = grid_lines(journey.plane.extent)
    step = gru_step(
        weights, torch.tensor([[-1.0, 1.0]]), torch.as_tensor(grid.reshape(-1, 2)).float()
    )
    formulas = [operation.formula for operation in journey.operations]
    for index, expected in (
        (formulas.index(r"$h$"), grid.reshape(-1, 2)),
        (formulas.index(r"$r \odot t_{hn}$"), step.reset_hidden_candidate_transform),
        (formulas.index(r"$n = \tanh(r \odot t_{hn} + t_{xn})$"), step.candidate),
        (formulas.index(r"$h' = (1 - z) \odot n + z \odot h$"), step.hidden),
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


def test_plot_variant_refuses_a_model_its_spec_does_not_describe(tmp_path) -> None:
    squares = generate_squares(4, 0.1, 0, False)

    with pytest.raises(TypeError, match="arch gru needs a RecurrentClassifier, got Linear"):
        plot_variant("gru", spec_of("gru"), nn.Linear(2, 1), squares, HISTORY, tmp_path)
