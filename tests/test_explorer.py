"""The explorer page: its data holds every variant's exact weights and the static pictures' planes,
its bytes are deterministic, and in a real Chromium (offline_page: no network, any console error
fails the test) its own forward pass gives the library's numbers for every architecture, it
takes mouse and keyboard, and it answers bad input in words. The slow test opens the page the
real report stage wrote, from the report, and checks it against the pipeline's predictions."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.library.cells import LSTMStep
from pipeline.library.models import RecurrentClassifier, build_model, load_checkpoint
from pipeline.library.settings import ModelSpec
from pipeline.library.squares import NOISE_FREE, Squares, generate_squares, read_squares
from pipeline.pictures.explorer import (
    RESPONSE_MARGIN,
    Trained,
    explorer_data,
    page_json,
    render_explorer,
)
from pipeline.pictures.from_weights import boundary_over, hidden_space, unroll_layers
from pipeline.pictures.hidden_states import PROBABILITY_LEVELS
from pipeline.pictures.report import EXPLORER_PAGE
from pipeline.pictures.shared import LABEL_COLOURS

TOLERANCE = 1e-6
#: Every architecture params.yaml can name, and two the shipped one does not (a wider hidden
#: state, drawn in a PCA plane; a stacked bidirectional LSTM, whose second layer reads 4-D).
SPECS = {
    "rnn": ModelSpec("rnn", 2, 1, False, False),
    "gru": ModelSpec("gru", 2, 1, False, False),
    "lstm": ModelSpec("lstm", 2, 1, False, False),
    "rnn_stacked": ModelSpec("rnn", 2, 2, False, False),
    "rnn_bidirectional": ModelSpec("rnn", 2, 1, True, False),
    "lstm_packed": ModelSpec("lstm", 2, 1, True, True),
    "conv1d": ModelSpec("conv1d", 1, 1, False, False),
    "gru_hidden3": ModelSpec("gru", 3, 1, False, False),
    "lstm_stacked_bidirectional": ModelSpec("lstm", 2, 2, True, True),
}
#: The gates of each cell, as the page names them and as pipeline.library.cells does.
GATES = {
    "rnn": {},
    "gru": {"r": "reset_gate", "z": "update_gate"},
    "lstm": {"i": "input_gate", "f": "forget_gate", "o": "output_gate"},
}
#: Everything score() returns for every square of a variant, in one call.
SCORE_ALL = "([name, squares]) => squares.map(points => window.explorer.score(name, points))"


def small_variants() -> list[Trained]:
    """Untrained (seeded) models of every spec, with squares of two to four points (conv1d:
    four), noisier than the datasets' so that the states spread."""
    variants = []
    for index, (name, spec) in enumerate(SPECS.items()):
        squares = generate_squares(48, 0.3, seed=5, variable_len=spec.recurrent)
        model = build_model(spec, seed=index).eval()
        variants.append(Trained(name, spec.describe(), 0.5, model, squares))
    return variants


@pytest.fixture(scope="module")
def small_page(tmp_path_factory) -> tuple[Path, list[Trained]]:
    """The page of every small variant, written where a report would write it."""
    variants = small_variants()
    path = tmp_path_factory.mktemp("explorer") / EXPLORER_PAGE
    path.write_text(render_explorer(explorer_data(variants)))
    return path, variants


def real_sequences(squares: Squares) -> list[list[list[float]]]:
    """Each square's real points, as the page takes them."""
    return [
        points[:length].tolist()
        for points, length in zip(squares.points, squares.lengths, strict=True)
    ]


@torch.no_grad()
def library_probabilities(model: torch.nn.Module, squares: Squares) -> np.ndarray:
    """The model's P(clockwise) for each square read alone (L points, no padding): squares of
    one length go through together."""
    probabilities = np.empty(len(squares))
    for length in np.unique(squares.lengths):
        rows = np.flatnonzero(squares.lengths == length)
        features = torch.as_tensor(squares.points[rows, :length]).float()
        lengths = torch.full((len(rows),), int(length))
        probabilities[rows] = torch.sigmoid(model(features, lengths))[:, 0].double().numpy()
    return probabilities


@torch.no_grad()
def largest_differences(model: torch.nn.Module, squares: Squares, scored: list[dict]) -> dict:
    """The largest |page - library| of each quantity the page computed for `squares`: hidden
    and cell states, gates and outputs per layer and direction (the cells, unrolled as the
    static pictures unroll them, each backward direction from the square's last point), or
    the conv1d filter responses."""
    differences: dict[str, float] = {}

    def note(name: str, page: object, library: np.ndarray) -> None:
        gap = float(np.abs(np.asarray(page, dtype=np.float64) - library).max())
        differences[name] = max(differences.get(name, 0.0), gap)

    sequences = torch.as_tensor(squares.points).float()
    if not isinstance(model, RecurrentClassifier):
        responses = torch.relu(model.conv(sequences.transpose(1, 2))).double().numpy()
        for square, result in enumerate(scored):
            note("responses", result["responses"], responses[square])
        return differences
    lengths = torch.as_tensor(squares.lengths)
    runs = unroll_layers(model.recurrent, sequences, lengths, packed=True)
    kind = type(model.recurrent).__name__.lower()
    for square, result in enumerate(scored):
        length = int(squares.lengths[square])
        note("outputs", result["outputs"], runs[-1].outputs[square, :length].double().numpy())
        for layer, run in enumerate(runs):
            for direction, cells in enumerate(run.directions):
                page = result["layers"][layer][direction]
                fields = {"hidden": "hidden", **GATES[kind]}
                if isinstance(cells, LSTMStep):
                    fields["cell"] = "cell"
                for name, field in fields.items():
                    values = page["gates"][name] if name in GATES[kind] else page[name]
                    library = getattr(cells, field)[square, :length].double().numpy()
                    note(name, values, library)
    return differences


def test_the_page_data_holds_each_variant_s_float32_weights_exactly_and_its_pictures_plane():
    variants = small_variants()
    data = json.loads(page_json(explorer_data(variants)))

    assert [variant["name"] for variant in data["variants"]] == list(SPECS)
    assert data["colours"] == list(LABEL_COLOURS)
    assert data["labels"] == ["counter-clockwise", "clockwise"]
    assert len(data["bands"]) == len(PROBABILITY_LEVELS) - 1
    squares = {square["name"]: square for square in data["squares"]}
    assert len(squares) == 8
    assert squares["ABCD"] == {"name": "ABCD", "label": 1, "points": NOISE_FREE[0, 1].tolist()}
    assert squares["ADCB"]["label"] == 0
    for trained, shown in zip(variants, data["variants"], strict=True):
        model = trained.model
        state = {key: value.double().numpy() for key, value in model.state_dict().items()}
        assert shown["classifier"]["weight"] == state["classifier.weight"][0].tolist()
        assert shown["classifier"]["bias"] == state["classifier.bias"][0]
        spec = SPECS[trained.name]
        if not spec.recurrent:
            assert shown["conv"]["weight"] == state["conv.weight"].tolist()
            assert shown["conv"]["bias"] == state["conv.bias"].tolist()
            with torch.no_grad():
                sequences = torch.as_tensor(trained.test.points).float().mT
                largest = float(torch.relu(model.conv(sequences)).max())
            assert shown["scale"] == pytest.approx(RESPONSE_MARGIN * largest)
            continue
        assert len(shown["layers"]) == spec.num_layers
        for layer, directions in enumerate(shown["layers"]):
            assert len(directions) == spec.directions
            for direction, cell in enumerate(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    assert cell[name] == state[f"recurrent.{name}{suffix}"].tolist()
        plane = hidden_space(model, trained.test).plane
        assert shown["plane"]["mean"] == plane.mean.tolist()
        assert shown["plane"]["components"] == plane.components.tolist()
        assert shown["plane"]["limit"] == boundary_over(model.classifier, plane).limit
        projected = spec.hidden_dim * spec.directions > 2
        assert shown["plane"]["projected"] == projected
        assert (shown["plane"]["axes"] == ["h0", "h1"]) != projected


def test_building_the_page_twice_gives_the_same_bytes():
    first = render_explorer(explorer_data(small_variants()))
    second = render_explorer(explorer_data(small_variants()))

    assert first == second
    assert "</script" not in page_json(explorer_data(small_variants()))


def test_the_page_computes_every_architecture_s_numbers_as_the_library_does(
    small_page, offline_page
):
    path, variants = small_page
    offline_page.goto(path.as_uri())

    assert offline_page.evaluate("window.explorer.variants") == list(SPECS)
    for variant in variants:
        squares = variant.test
        scored = offline_page.evaluate(SCORE_ALL, [variant.name, real_sequences(squares)])
        page = np.array([result["probability"] for result in scored])
        library = library_probabilities(variant.model, squares)
        assert np.abs(page - library).max() <= TOLERANCE, variant.name
        differences = largest_differences(variant.model, squares, scored)
        assert differences, variant.name
        assert max(differences.values()) <= TOLERANCE, (variant.name, differences)


def plane_position(page, x: float, y: float) -> tuple[float, float]:
    """Where the drawing plane's point (x, y) is on the page, in CSS pixels."""
    box = page.locator("#plane rect").bounding_box()
    limit = page.evaluate(
        "JSON.parse(document.getElementById('explorer-data').textContent).inputLimit"
    )
    return (
        box["x"] + (x + limit) / (2 * limit) * box["width"],
        box["y"] + (limit - y) / (2 * limit) * box["height"],
    )


def point_position(page, index: int) -> tuple[float, float]:
    box = page.locator(f'#plane .point[data-index="{index}"] circle').bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def message(page) -> str:
    return page.locator("#message").inner_text()


def test_points_are_placed_moved_and_deleted_with_the_mouse(small_page, offline_page):
    path, _ = small_page
    offline_page.goto(path.as_uri())
    offline_page.get_by_role("button", name="Clear the points").click()
    assert "No points yet" in message(offline_page)

    corners = [(-1, -1), (-1, 1), (1, 1), (1, -1)]
    offline_page.mouse.click(*plane_position(offline_page, *corners[0]))
    assert "One point is not a square yet" in message(offline_page)
    assert "No reading" in offline_page.locator(".inside .note").inner_text()
    for corner in corners[1:]:
        offline_page.mouse.click(*plane_position(offline_page, *corner))
    state = offline_page.evaluate("window.explorer.state()")
    assert np.allclose(state["points"], corners, atol=0.02), state
    assert message(offline_page) == ""
    offline_page.mouse.click(*plane_position(offline_page, 0, 0))  # a fifth: refused in words
    assert "all 4 are placed" in message(offline_page)

    offline_page.mouse.move(*point_position(offline_page, 1))
    offline_page.mouse.down()
    offline_page.mouse.move(*plane_position(offline_page, -0.5, 1.5), steps=5)
    offline_page.mouse.up()
    moved = offline_page.evaluate("window.explorer.state().points")
    assert np.allclose(moved[1], (-0.5, 1.5), atol=0.02), moved

    offline_page.mouse.click(*point_position(offline_page, 2), button="right")
    left = offline_page.evaluate("window.explorer.state().points")
    assert len(left) == 3 and np.allclose(left[2], corners[3], atol=0.02), left
    # Selected by a click, deleted by the Delete key.
    offline_page.mouse.click(*point_position(offline_page, 0))
    offline_page.keyboard.press("Delete")
    assert len(offline_page.evaluate("window.explorer.state().points")) == 2


def test_the_keyboard_moves_and_deletes_points_and_steps_through_the_reading(
    small_page, offline_page
):
    path, _ = small_page
    offline_page.goto(path.as_uri())
    offline_page.evaluate("window.explorer.setPoints([[-1, -1], [-1, 1], [1, 1], [1, -1]])")
    offline_page.evaluate("window.explorer.select('gru')")

    offline_page.locator('#plane .point[data-index="2"]').focus()
    offline_page.keyboard.press("ArrowLeft")
    offline_page.keyboard.press("Shift+ArrowDown")
    points = offline_page.evaluate("window.explorer.state().points")
    assert np.allclose(points[2], (0.95, 0.75)), points
    offline_page.keyboard.press("Delete")
    assert len(offline_page.evaluate("window.explorer.state().points")) == 3

    offline_page.evaluate("window.explorer.setPoints([[-1, -1], [-1, 1], [1, 1], [1, -1]])")
    offline_page.locator("h1").click()  # focus on the page, not on a control
    assert offline_page.evaluate("window.explorer.state().step") == 4
    offline_page.keyboard.press("ArrowLeft")
    offline_page.keyboard.press("ArrowLeft")
    assert offline_page.evaluate("window.explorer.state().step") == 2
    assert "step 2 of 4" in offline_page.locator("#step + output").inner_text()
    offline_page.keyboard.press("End")
    assert offline_page.evaluate("window.explorer.state().step") == 4

    text = offline_page.locator("#points-text")
    text.fill("1, 1; 1, -1; -1, -1")
    text.press("Enter")
    assert offline_page.evaluate("window.explorer.state().points") == [[1, 1], [1, -1], [-1, -1]]


@pytest.mark.parametrize(
    ("typed", "points", "said"),
    [
        ("0.5, 0.5", [[0.5, 0.5]], "One point is not a square yet"),
        (
            "-1, -1; 40, 3",
            [[-1, -1], [40, 3]],
            "Point 2 at (40.00, 3.00) lies outside the drawing plane",
        ),
        ("-1, -1; 1", [[-1, -1], [1]], "Each point needs two finite numbers"),
        ("", [], "No points yet"),
        ("1, 1; 1, -1; -1, -1; -1, 1; 0, 0", [[1, 1]] * 5, "5 points are 1 too many"),
    ],
)
def test_bad_input_gets_a_plain_message_never_a_blank_or_an_error(
    small_page, offline_page, typed, points, said
):
    path, _ = small_page
    offline_page.goto(path.as_uri())
    text = offline_page.locator("#points-text")
    text.fill(typed)
    text.press("Enter")

    assert said in message(offline_page)
    verdicts = offline_page.locator(".verdict .value").all_inner_texts()
    assert len(verdicts) == len(SPECS) and all(verdicts), verdicts
    assert offline_page.locator(".inside .note").inner_text().strip()
    with pytest.raises(Exception, match=re.escape(said.split(" at ")[0])):
        offline_page.evaluate("points => window.explorer.score('gru', points)", points)


def test_conv1d_reads_four_points_and_says_so_for_fewer(small_page, offline_page):
    path, _ = small_page
    offline_page.goto(path.as_uri())
    offline_page.evaluate("window.explorer.setPoints([[-1, -1], [-1, 1], [1, 1]])")
    offline_page.evaluate("window.explorer.select('conv1d')")

    assert "conv1d reads exactly 4 points" in offline_page.locator(".inside .note").inner_text()
    conv = offline_page.locator(".verdict", has_text="conv1d").locator(".value").inner_text()
    assert conv == "needs 4 points"
    assert offline_page.locator(".verdict", has_text="lstm_packed").locator(".value").inner_text()


def test_a_screenshot_at_1280_px_shows_every_part_and_nothing_spills_over(
    small_page, offline_page, tmp_path
):
    path, _ = small_page
    offline_page.goto(path.as_uri())
    offline_page.evaluate("window.explorer.select('lstm_stacked_bidirectional')")
    offline_page.evaluate("window.explorer.setStep(2)")
    screenshot = tmp_path / "explorer.png"
    offline_page.screenshot(path=screenshot, full_page=True)
    seen = f"(see {screenshot})"

    width = offline_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"the page is {width} px wide {seen}"
    # The main panel and one per direction, the tables of both layers' two directions.
    assert offline_page.locator(".figures svg").count() == 3, seen
    assert offline_page.locator(".tables table").count() == 2 * 2 + 1, seen
    assert offline_page.locator(".figures polygon").count() > 8, seen  # bands and squares
    for part in ("#plane", ".verdicts", ".figures", ".legend", ".tables"):
        box = offline_page.locator(part).bounding_box()
        assert box and box["width"] > 0 and box["x"] + box["width"] <= 1280, (part, seen)


def test_the_page_runs_in_mlflow_s_artifact_view_a_sandboxed_frame(small_page, offline_page):
    """MLflow's UI shows an HTML artifact in an <iframe sandbox="allow-scripts"> of a blob."""
    path, _ = small_page
    offline_page.set_content('<iframe sandbox="allow-scripts" width="1200" height="800"></iframe>')
    offline_page.evaluate(
        "text => document.querySelector('iframe').src ="
        " URL.createObjectURL(new Blob([text], {type: 'text/html'}))",
        path.read_text(),
    )
    frame = offline_page.frame_locator("iframe")
    frame.locator(".verdict").first.wait_for()

    assert frame.locator(".verdict").count() == len(SPECS)
    assert frame.locator(".figures svg").count() >= 1


def predicted(root: Path, name: str) -> dict[int, float]:
    """data/predictions/<name>.csv's probability of each test sequence, by seq_id."""
    with (root / "data" / "predictions" / f"{name}.csv").open() as file:
        return {int(row["seq_id"]): float(row["probability"]) for row in csv.DictReader(file)}


def check_against_the_pipeline(page, root: Path, params: dict) -> dict[str, dict[str, float]]:
    """Feed every test square of every variant through the page open in `page`; each variant's
    largest differences from its predictions (probability) and from the library (the rest)."""
    measured = {}
    for name, settings in params["models"].items():
        squares = read_squares(root / "data" / "split" / settings["dataset"] / "test.parquet")
        scored = page.evaluate(SCORE_ALL, [name, real_sequences(squares)])
        expected = predicted(root, name)
        probabilities = [expected[int(seq_id)] for seq_id in squares.seq_ids]
        page_probabilities = [result["probability"] for result in scored]
        model = load_checkpoint(root / "data" / "models" / name)
        measured[name] = {
            "probability": float(np.abs(np.subtract(page_probabilities, probabilities)).max()),
            **largest_differences(model, squares, scored),
        }
    return measured


@pytest.mark.slow
def test_the_report_links_the_explorer_whose_numbers_are_the_pipeline_s(
    reproduced_template, offline_page, tmp_path
):
    root = reproduced_template.root
    offline_page.goto((root / "data" / "report" / "index.html").as_uri())
    offline_page.get_by_role("link", name="Draw a square, watch the hidden state").click()
    offline_page.wait_for_function("window.explorer !== undefined")
    assert offline_page.url == (root / "data" / "report" / EXPLORER_PAGE).as_uri()
    screenshot = tmp_path / "explorer.png"
    offline_page.screenshot(path=screenshot, full_page=True)

    measured = check_against_the_pipeline(offline_page, root, reproduced_template.params())
    assert set(measured) == set(reproduced_template.params()["models"])
    for name, differences in measured.items():
        assert max(differences.values()) <= TOLERANCE, (name, differences, screenshot)

    from pipeline.runtime import tracking

    client = tracking.client(f"sqlite:///{root / 'mlflow.db'}")
    [report] = [run for run in reproduced_template.mlflow_runs() if run.info.run_name == "report"]
    logged = [artifact.path for artifact in client.list_artifacts(report.info.run_id, "report")]
    assert f"report/{EXPLORER_PAGE}" in logged
