"""The comparison report: ranking, the order ablation, and pages that stand on their own."""

import re
from pathlib import Path

import matplotlib
from PIL import Image

from pipeline.params import DatasetParams, ModelParams
from pipeline.report import (
    PICTURES,
    Variant,
    ablation_pairs,
    accuracy_bars,
    ranked,
    render_html,
    render_markdown,
)

GRU = ModelParams("gru", "fixed", 2, 1, False, False, 100, 16, 0.01, 21, 42)
FIXED = DatasetParams(1024, 0.1, 13, False, False)
SHUFFLED = DatasetParams(1024, 0.1, 13, False, True)


def test_the_ablation_is_paired_with_the_same_model_on_the_same_squares_in_order():
    datasets = {
        "fixed": FIXED,
        "fixed_shuffled": SHUFFLED,
        "other": DatasetParams(1024, 0.1, 99, False, False),
    }
    models = {
        "gru": GRU,
        "gru_other_seed": ModelParams(**{**vars(GRU), "seed": 7}),
        "gru_on_other": ModelParams(**{**vars(GRU), "dataset": "other"}),
        "gru_shuffled": ModelParams(**{**vars(GRU), "dataset": "fixed_shuffled"}),
    }
    assert ablation_pairs(models, datasets) == [("gru", "gru_shuffled")]


def variant(name: str, accuracy: float, loss: float, directory: Path) -> Variant:
    """A variant whose pictures are small stand-ins, one colour each."""
    plots_dir = directory / name
    plots_dir.mkdir(parents=True)
    for picture, colour in zip(PICTURES["recurrent"], ("blue", "red", "green"), strict=True):
        Image.new("RGB", (4, 4), colour).save(plots_dir / picture)
    return Variant(name, GRU, 21, accuracy, loss, 0.52, plots_dir)


def test_variants_are_ranked_by_accuracy_then_loss_then_name(tmp_path):
    variants = [
        variant(*spec, tmp_path)
        for spec in [("a", 0.9, 0.3), ("b", 1.0, 0.2), ("c", 1.0, 0.1), ("d", 0.9, 0.3)]
    ]
    assert [v.name for v in ranked(variants)] == ["c", "b", "a", "d"]


def test_html_embeds_every_picture_and_fetches_nothing(tmp_path):
    variants = [variant("gru", 1.0, 0.01, tmp_path), variant("gru_shuffled", 0.5, 0.69, tmp_path)]
    chart = tmp_path / "accuracy.png"
    accuracy_bars(["gru", "gru_shuffled"], [1.0, 0.5], chart)
    page = render_html(variants, [("gru", "gru_shuffled")], chart)
    assert page.count("data:image/gif;base64,") == 2  # each journey
    assert page.count("data:image/png;base64,") == 5  # the chart, each loss curve, both separations
    assert not re.search(r"(src|href)=\"(?!data:)", page)  # nothing loaded from elsewhere
    assert "<script" not in page
    assert page.index('id="gru"') < page.index('id="gru_shuffled"')
    assert "Always answering the larger class would score 52.00%" in page


def test_markdown_links_pictures_relative_to_the_report(tmp_path):
    plots, report = tmp_path / "plots", tmp_path / "report"
    plots.mkdir()
    variants = [variant("gru", 1.0, 0.01, plots)]
    text = render_markdown(variants, [], report / "accuracy.png", report)
    assert "](accuracy.png)" in text
    assert "](../plots/gru/journey.gif)" in text
    assert "](../plots/gru/loss_curves.png)" in text
    assert "| gru | GRU, hidden size 2 | fixed | 21 | 100 | 100.00% | 0.0100 |" in text


def test_accuracy_bars_ignore_the_callers_matplotlib_settings(tmp_path):
    names, accuracies = ["rnn", "gru", "conv1d"], [0.98, 1.0, 0.91]
    accuracy_bars(names, accuracies, tmp_path / "plain.png")
    with matplotlib.rc_context({"font.size": 20, "lines.linewidth": 5, "savefig.dpi": 300}):
        accuracy_bars(names, accuracies, tmp_path / "styled.png")
    assert (tmp_path / "plain.png").read_bytes() == (tmp_path / "styled.png").read_bytes()
    with Image.open(tmp_path / "plain.png") as image:
        assert image.format == "PNG"
