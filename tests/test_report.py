"""The comparison report: ranking, the order ablation, and one page that shows every variant
fully, says which data each result came from, claims only what its pictures show, and
stands on its own."""

import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import pytest
from PIL import Image

from pipeline.library.errors import InputError
from pipeline.library.settings import ModelParams, ModelSpec, SplitParams, SquaresParams
from pipeline.pictures.accuracy_bars import accuracy_bars
from pipeline.pictures.canvas import description_of, save_gif, save_png
from pipeline.pictures.padding import Padding
from pipeline.pictures.registry import picture_names
from pipeline.pictures.report import (
    EXPLORER_PAGE,
    INTRO,
    NOISE_SWEEP_PAGE,
    Scores,
    Variant,
    ablation_pairs,
    ranked,
    render_report,
)
from tests.test_plots import draw


def model_params(
    arch: str, dataset: str, hidden_dim: int = 2, both_ways: bool = False
) -> ModelParams:
    """A variant's params.yaml section, trained as every variant here is."""
    architecture = {"num_layers": 1, "bidirectional": both_ways, "packed": both_ways}
    training = {"epochs": 100, "batch_size": 16, "lr": 0.01, "seed": 21, "shuffle_seed": 42}
    return ModelParams(
        arch=arch, dataset=dataset, hidden_dim=hidden_dim, **architecture, **training
    )


GRU = model_params("gru", "fixed")
LSTM_PACKED = model_params("lstm", "variable", both_ways=True)
CONV = model_params("conv1d", "fixed", hidden_dim=1)
SQUARES = {"n": 1024, "noise": 0.1, "seed": 13, "variable_len": False, "shuffle_points": False}
FIXED = SquaresParams(**SQUARES)
SHUFFLED = SquaresParams(**SQUARES | {"shuffle_points": True})
VARIABLE = SquaresParams(**SQUARES | {"seed": 17, "variable_len": True})
SPLIT = SplitParams(seed=42, val=0.2, test=0.2)
DIRECTIONS = ("counter-clockwise", "clockwise")
SCORES = Scores(
    accuracy=1.0, loss=0.01, parameters=39, classes=DIRECTIONS, confusion=((105, 0), (0, 99))
)
#: What the page must show for each kind of variant, in this order.
SHOWN = {
    "recurrent": [
        "loss_curves.png",
        "hidden_states.png",
        "noise_free_states.png",
        "journey.png",
        "journey.gif",
        "transformed_inputs.png",
    ],
    "bidirectional": [
        "loss_curves.png",
        "hidden_states.png",
        "noise_free_states.png",
        "journey_forward.png",
        "journey_backward.png",
        "journey_forward.gif",
        "journey_backward.gif",
        "transformed_inputs.png",
    ],
    "conv1d": ["loss_curves.png", "conv_filters.png", "conv_edges.png"],
}
#: What the introduction says the journeys of every recurrent variant show.
JOURNEY_CLAIMS = (
    "clockwise square A, B, C, D",
    "counter-clockwise square A, D, C, B",
    "decision boundary",
)


class Page(HTMLParser):
    """The parts of a report page the tests read: each <img> with its attributes and the id of
    the <section> it is in; every src/href; every tag name."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.tags: set[str] = set()
        self.section = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.tags.add(tag)
        self.links += [values[name] for name in ("src", "href", "data") if name in values]
        self.ids |= {values["id"]} if "id" in values else set()
        if tag == "section":
            self.section = values.get("id", "")
        if tag == "img":
            self.images.append({**values, "section": self.section})

    def pictures_of(self, section: str) -> list[dict[str, str]]:
        return [image for image in self.images if image["section"] == section]


def stand_in_pictures(spec: ModelSpec, plots_dir: Path) -> None:
    """Small pictures under the names plot@ writes for `spec`, each of its own size and with a
    description naming it, written the way plot@ writes them."""
    plots_dir.mkdir(parents=True)
    for index, name in enumerate(picture_names(spec)):
        image = Image.new("RGB", (20 + index, 10), "white")
        path = plots_dir / name
        if path.suffix == ".gif":
            save_gif(iter([(image.quantize(), 100)]), path, f"{plots_dir.name}: {name}")
        else:
            save_png(image, path, f"{plots_dir.name}: {name}")


def variant(
    name: str,
    directory: Path,
    model: ModelParams = GRU,
    scores: Scores = SCORES,
    dataset: SquaresParams = FIXED,
) -> Variant:
    """A variant whose pictures are stand-ins."""
    stand_in_pictures(model.spec(dataset.shape), directory / name)
    return Variant(name, model, dataset, SPLIT, scores, directory / name)


def chart(directory: Path, variants: list[Variant]) -> Path:
    path = directory / "report" / "accuracy.png"
    accuracy_bars([v.name for v in variants], [v.scores.accuracy for v in variants], path)
    return path


def test_a_packed_variant_is_shown_beside_its_padded_twin_with_the_padding_picture(tmp_path):
    padded = LSTM_PACKED.model_copy(update={"packed": False})
    worse = replace(SCORES, accuracy=0.9, confusion=((95, 10), (10, 89)))
    variants = [
        variant("lstm_packed", tmp_path, LSTM_PACKED, dataset=VARIABLE),
        variant("lstm_padded", tmp_path, padded, worse, dataset=VARIABLE),
    ]
    picture = tmp_path / "padding" / "lstm_padded" / "padding.png"
    picture.parent.mkdir(parents=True)
    save_png(Image.new("RGB", (30, 20), "white"), picture, "one short square through both")
    padding = Padding([("lstm_packed", "lstm_padded")], tmp_path / "padding")

    page = render_report(variants, [], chart(tmp_path, variants), padding)

    shown = [image for image in Page(page).images if image["alt"] == description_of(picture)]
    assert len(shown) == 1 and shown[0]["width"] == "30"
    assert "90.00% test accuracy against 100.00%" in page
    assert "Padding beside packing" not in render_report(variants, [], chart(tmp_path, variants))


def test_the_ablation_is_paired_with_the_same_model_on_the_same_squares_in_order():
    datasets = {
        "fixed": FIXED,
        "fixed_shuffled": SHUFFLED,
        "other": SquaresParams(**SQUARES | {"seed": 99}),
    }
    models = {
        "gru": GRU,
        "gru_other_seed": GRU.model_copy(update={"seed": 7}),
        "gru_on_other": GRU.model_copy(update={"dataset": "other"}),
        "gru_shuffled": GRU.model_copy(update={"dataset": "fixed_shuffled"}),
    }
    assert ablation_pairs(models, datasets) == [("gru", "gru_shuffled")]


def test_variants_are_ranked_by_accuracy_then_loss_then_name(tmp_path):
    variants = [
        variant(name, tmp_path, scores=replace(SCORES, accuracy=accuracy, loss=loss))
        for name, accuracy, loss in [
            ("a", 0.9, 0.3),
            ("b", 1.0, 0.2),
            ("c", 1.0, 0.1),
            ("d", 0.9, 0.3),
        ]
    ]
    assert [v.name for v in ranked(variants)] == ["c", "b", "a", "d"]


def test_scores_come_from_the_evaluate_stages_metrics_and_confusion_files():
    metrics = {"test_accuracy": 0.985, "test_loss": 0.05, "parameters": 39}
    confusion = {"classes": list(DIRECTIONS), "confusion": [[100, 2], [1, 101]]}

    scores = Scores.from_files(metrics, confusion, "data/metrics/gru.json")

    assert (scores.correct, scores.total) == ((100, 101), (102, 102))
    assert (scores.accuracy, scores.loss, scores.parameters) == (0.985, 0.05, 39)
    assert scores.majority_share == 0.5
    with pytest.raises(InputError, match=r"^data/metrics/gru.json: missing test_loss"):
        Scores.from_files({"test_accuracy": 1, "parameters": 3}, confusion, "data/metrics/gru.json")
    with pytest.raises(InputError, match=r"^data/metrics/gru.json: the confusion matrix is not 2"):
        Scores.from_files(metrics, {**confusion, "confusion": [[1, 2]]}, "data/metrics/gru.json")


def test_a_picture_without_its_description_is_refused_in_one_line(tmp_path):
    Image.new("RGB", (4, 4), "white").save(tmp_path / "drawn_elsewhere.png")

    with pytest.raises(InputError, match=r"drawn_elsewhere.png: holds no description"):
        description_of(tmp_path / "drawn_elsewhere.png")


def test_every_variant_shows_each_picture_of_its_kind_at_1_to_1_described(tmp_path):
    variants = [
        variant("gru", tmp_path),
        variant("lstm_packed", tmp_path, LSTM_PACKED, dataset=VARIABLE),
        variant("conv1d", tmp_path, CONV),
    ]

    page = Page(render_report(variants, [], chart(tmp_path, variants)))

    for name, kind in (
        ("gru", "recurrent"),
        ("lstm_packed", "bidirectional"),
        ("conv1d", "conv1d"),
    ):
        images = page.pictures_of(name)
        assert [image["alt"] for image in images] == [f"{name}: {p}" for p in SHOWN[kind]]
        for image, picture in zip(images, SHOWN[kind], strict=True):
            with Image.open(tmp_path / name / picture) as file:
                assert (int(image["width"]), int(image["height"])) == file.size, picture


def test_the_page_fetches_nothing_and_runs_no_script(tmp_path):
    variants = [variant("gru", tmp_path), variant("gru_shuffled", tmp_path)]
    shuffled = replace(
        variants[1], dataset=SHUFFLED, model=GRU.model_copy(update={"dataset": "fixed_shuffled"})
    )

    text = render_report(
        [variants[0], shuffled], [("gru", "gru_shuffled")], chart(tmp_path, variants)
    )
    page = Page(text)

    pictures = [link for link in page.links if link.startswith("data:image/")]
    anchors = [link for link in page.links if link.startswith("#")]
    # Beside its own pictures and parts: the explorer beside it and the noise sweep's page,
    # where make sweep writes it; each once.
    others = [link for link in page.links if link not in pictures + anchors]
    assert pictures and sorted(others) == sorted([EXPLORER_PAGE, NOISE_SWEEP_PAGE])
    assert {anchor[1:] for anchor in anchors} <= page.ids
    assert not page.tags & {"script", "iframe", "embed", "link"}
    assert "url(" not in text
    # No style shrinks a picture below its own size.
    assert re.search(r"img \{[^}]*max-width: none", text)
    assert "Always answering the larger class would score 51.47%" in text
    assert text.index('id="gru"') < text.index('id="gru_shuffled"')


def test_each_result_says_which_data_it_came_from(tmp_path):
    noisy = SquaresParams(**SQUARES | {"n": 512, "noise": 0.3})
    pages = {}
    for dataset in (FIXED, noisy):
        directory = tmp_path / str(dataset.noise)
        variants = [variant("gru", directory, dataset=dataset)]
        pages[dataset.noise] = render_report(variants, [], chart(directory, variants))

    quiet, loud = pages[0.1], pages[0.3]
    assert quiet != loud
    for text, n, noise in ((quiet, 1024, 0.1), (loud, 512, 0.3)):
        data = f"dataset fixed: {n} squares, noise {noise}, 4 points each (seed 13)"
        assert text.count(data) == 2  # the list of datasets, and the variant's own section
        assert "split 60 / 20 / 20 % train / validation / test (seed 42): 204 test squares" in text
        assert re.search(rf'<td class="number">{n}</td><td class="number">{noise}</td>', text)


def test_the_contents_and_the_tables_names_lead_to_each_variants_section(tmp_path):
    variants = [variant("gru", tmp_path), variant("conv1d", tmp_path, model=CONV)]
    page = Page(render_report(variants, [], chart(tmp_path, variants)))

    assert page.links.count("#gru") == 2 and page.links.count("#conv1d") == 2  # contents, table
    assert {"results", "noise-sweep", "gru", "conv1d"} <= page.ids
    assert "#gates" not in page.links  # no gated variant has its gates' numbers here


def test_the_gates_sentences_give_each_gates_means_and_what_they_keep(tmp_path):
    gates = {"forward": {"r": [0.9, 0.8, 0.7, 0.6], "z": [0.5, 0.2, 0.4, 0.3]}}
    gru = replace(variant("gru", tmp_path), gates=gates)
    rnn = variant("rnn", tmp_path, model=model_params("rnn", "fixed"))
    text = render_report([gru, rnn], [], chart(tmp_path, [gru, rnn]))
    section = text[text.index('<section id="gates">') :].split("</section>")[0]

    assert "update gate z" in section and "0.50, 0.20, 0.40 and 0.30 at steps 1 to 4" in section
    assert "reset gate r" in section and "0.90, 0.80, 0.70 and 0.60 at steps 1 to 4" in section
    # Steps 2 to 4 keep (0.2 + 0.4 + 0.3) / 3 = 30% of the state.
    assert "keeps 30% of its hidden state per step and writes 70% anew" in section
    assert "rnn 100.00%" in section  # the plain RNN's accuracy beside the gated one's
    assert "#gates" in Page(text).links


def test_an_lstms_gates_are_read_forward_first_and_its_forget_gate_only_keeps(tmp_path):
    steps = {"i": [0.5, 0.5], "o": [0.9, 0.9]}
    gates = {"backward": steps | {"f": [0.1, 0.2]}, "forward": steps | {"f": [0.3, 0.6]}}
    lstm = replace(variant("lstm", tmp_path, model=LSTM_PACKED, dataset=VARIABLE), gates=gates)
    text = render_report([lstm], [], chart(tmp_path, [lstm]))

    forward, backward = text.index("(forward direction)"), text.index("(backward direction)")
    assert forward < backward
    assert "keeps 60% of its cell state per step." in text[forward:backward]
    assert "keeps 20% of its cell state per step." in text[backward:]
    assert "anew" not in text  # what the input gate writes is not what the forget gate drops


def test_a_long_sequences_gates_are_summed_up_not_listed(tmp_path):
    update = [0.5] + [0.25] * 62 + [0.75]  # 64 steps: mean 0.2578...
    gru = replace(variant("gru", tmp_path), gates={"forward": {"z": update, "r": update}})
    text = render_report([gru], [], chart(tmp_path, [gru]))

    assert "0.50 at step 1, 0.26 over all 64 steps and 0.75 at the last" in text
    assert "0.25, 0.25" not in text


def test_the_confusion_table_counts_each_class(tmp_path):
    scores = replace(SCORES, accuracy=0.95, confusion=((97, 3), (7, 97)))
    variants = [variant("gru", tmp_path, scores=scores)]

    text = render_report(variants, [], chart(tmp_path, variants))

    cells = '<td class="number">{}</td><td class="number">{}</td><td class="number">{}</td>'
    assert "<td>counter-clockwise</td>" + cells.format(97, 3, "97 of 100 (97.00%)") in text
    assert "<td>clockwise</td>" + cells.format(7, 97, "97 of 104 (93.27%)") in text


@pytest.fixture(scope="module")
def drawn_report(tmp_path_factory) -> tuple[Path, list[Variant]]:
    """A report of real pictures: an RNN's and a Conv1d's, drawn by plot_variant."""
    directory = tmp_path_factory.mktemp("report")
    rnn = GRU.model_copy(update={"arch": "rnn"})
    variants = []
    for name, model in (("rnn", rnn), ("conv1d", CONV)):
        draw(name, directory / "plots" / name)
        variants.append(Variant(name, model, FIXED, SPLIT, SCORES, directory / "plots" / name))
    page = directory / "report" / "index.html"
    page.parent.mkdir()
    page.write_text(render_report(variants, [], chart(directory, variants)))
    return page, variants


def test_the_introduction_claims_only_what_the_journeys_show(drawn_report):
    page, variants = drawn_report
    images = Page(page.read_text()).images

    for claim in JOURNEY_CLAIMS:
        assert claim in INTRO
    for variant_shown in variants:
        if not variant_shown.spec.recurrent:
            continue
        journeys = [path for path in variant_shown.pictures if path.stem.startswith("journey")]
        assert [path.suffix for path in journeys] == [".png", ".gif"]  # panels and animation
        for path in journeys:
            description = description_of(path)  # written by the code that drew it
            assert all(claim in description for claim in JOURNEY_CLAIMS), path
            assert any(image["alt"] == description for image in images), path


def test_a_browser_shows_every_picture_at_1_to_1_in_a_1280_px_window(
    drawn_report, offline_page, tmp_path
):
    page, _ = drawn_report

    offline_page.goto(page.resolve().as_uri())
    shown = offline_page.evaluate(
        "[...document.images].map(image => ({alt: image.alt, complete: image.complete,"
        " natural: [image.naturalWidth, image.naturalHeight], shown: [image.width,"
        " image.height], right: image.getBoundingClientRect().right}))"
    )
    window = offline_page.evaluate("document.documentElement.clientWidth")
    screenshot = tmp_path / "report.png"
    offline_page.screenshot(path=screenshot, full_page=True)

    assert len(shown) == 1 + 6 + 3, screenshot  # the chart, the RNN's and the Conv1d's
    for image in shown:
        assert image["complete"] and image["natural"][0] > 0, (image["alt"], screenshot)
        assert image["shown"] == image["natural"], (image["alt"], screenshot)  # 1:1
        assert image["right"] <= window, (image["alt"], screenshot)  # whole, no scrolling


def test_accuracy_bars_ignore_the_callers_matplotlib_settings(tmp_path):
    names, accuracies = ["rnn", "gru", "conv1d"], [0.98, 1.0, 0.91]
    accuracy_bars(names, accuracies, tmp_path / "plain.png")
    with matplotlib.rc_context({"font.size": 20, "lines.linewidth": 5, "savefig.dpi": 300}):
        accuracy_bars(names, accuracies, tmp_path / "styled.png")
    assert (tmp_path / "plain.png").read_bytes() == (tmp_path / "styled.png").read_bytes()
    assert description_of(tmp_path / "plain.png").startswith("Test accuracy per variant")
