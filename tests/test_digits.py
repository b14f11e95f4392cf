"""Digits read as sequences: what each reading order does to an image, the Parquet files of
another kind of data, the ten-class training and evaluation, and the digits' pictures."""

import json
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from conftest import copy_of_this_repository
from mlflow.exceptions import MlflowException

from pipeline.library.digits import (
    CLASS_NAMES,
    generate_digits,
    load_images,
    read_as_sequences,
    reading_order,
    unread,
)
from pipeline.library.history import History
from pipeline.library.models import build_model, load_checkpoint, load_spec, save_checkpoint
from pipeline.library.settings import DIGITS_COUNT, READING_ORDERS, ModelSpec
from pipeline.library.squares import (
    SCHEMA,
    extent,
    generate_squares,
    read_squares,
    shape_of,
    write_squares,
)
from pipeline.library.training import LabelledSequences, evaluate, predict_proba, train
from pipeline.pictures.plots import plot_variant
from pipeline.pictures.registry import picture_names
from pipeline.runtime.tracking.served_model import load_model_dir, write_accepts

#: A known image: pixel i of the flattened 8x8 holds i / 64, so every pixel says where it is.
KNOWN = (np.arange(64, dtype=np.float64) / 64).reshape(1, 8, 8)


def test_rows_reads_the_image_top_to_bottom_one_row_per_step():
    read = read_as_sequences(KNOWN, "rows", seed=0)
    assert read.shape == (1, 8, 8)
    assert np.array_equal(read[0, 2], KNOWN[0, 2])  # step 2 is the third row


def test_pixels_reads_one_pixel_per_step_row_after_row():
    read = read_as_sequences(KNOWN, "pixels", seed=0)
    assert read.shape == (1, 64, 1)
    assert np.array_equal(read[0, :, 0], KNOWN.ravel())


def test_a_fixed_permutation_moves_every_image_the_same_way_and_follows_its_seed():
    images = np.concatenate([KNOWN, 1 - KNOWN])
    read = read_as_sequences(images, "pixels_permuted", seed=3)[:, :, 0]
    order = (read[0] * 64).round().astype(int)  # each step says which pixel it read
    assert sorted(order) == list(range(64)) and not np.array_equal(order, np.arange(64))
    assert np.array_equal(read[1], 1 - read[0])  # the second image, in the same order
    assert np.array_equal(read, read_as_sequences(images, "pixels_permuted", seed=3)[:, :, 0])
    other = read_as_sequences(images, "pixels_permuted", seed=4)[:, :, 0]
    assert not np.array_equal(read, other)


def test_a_shuffle_draws_a_new_order_per_image_and_the_same_for_the_same_seed():
    images = np.repeat(KNOWN, 3, axis=0)
    read = read_as_sequences(images, "pixels_shuffled", seed=3)[:, :, 0]
    orders = (read * 64).round().astype(int)
    assert all(sorted(order) == list(range(64)) for order in orders)
    assert len({tuple(order) for order in orders}) == 3  # same image, three orders
    assert np.array_equal(read, read_as_sequences(images, "pixels_shuffled", seed=3)[:, :, 0])
    assert not np.array_equal(read, read_as_sequences(images, "pixels_shuffled", seed=4)[:, :, 0])


@pytest.mark.parametrize("order", READING_ORDERS)
def test_every_order_keeps_every_pixel_and_unread_gives_the_image_back(order):
    images, _ = load_images()
    digits = generate_digits(order, seed=7)
    ids = np.array([0, 5, DIGITS_COUNT - 1])
    assert np.array_equal(unread(digits.points[ids], ids, order, seed=7), images[ids])
    for row in ids:  # the same pixels, in some order
        assert np.array_equal(np.sort(digits.points[row].ravel()), np.sort(images[row].ravel()))


def test_unknown_reading_order_is_refused():
    with pytest.raises(ValueError, match="order must be one of rows, pixels"):
        reading_order("columns", 0, 1)


def test_pixels_are_scaled_to_the_unit_interval_exactly():
    images, labels = load_images()
    assert images.min() == 0 and images.max() == 1
    assert np.array_equal(images * 16, np.round(images * 16))  # k / 16 is exact
    assert sorted(set(labels.tolist())) == list(range(10))


def test_digits_files_declare_their_features_and_classes_and_round_trip(tmp_path):
    digits = generate_digits("rows", seed=7)
    path = tmp_path / "digits.parquet"
    write_squares(digits, path)
    schema = pq.read_schema(path)
    assert schema.field("points").type.value_type.names == [f"x{axis}" for axis in range(8)]
    assert json.loads(schema.metadata[b"pipeline.classes"]) == list(CLASS_NAMES)
    back = read_squares(path)
    assert np.array_equal(back.points, digits.points) and np.array_equal(back.labels, digits.labels)
    assert back.classes == CLASS_NAMES and back.about == digits.about
    assert shape_of(back).n_features == 8 and shape_of(back).n_classes == 10
    write_squares(digits, tmp_path / "again.parquet")  # the same bytes for the same data
    assert (tmp_path / "again.parquet").read_bytes() == path.read_bytes()


def test_square_files_carry_no_metadata_of_kind(tmp_path):
    # The squares' files keep their bytes: the schema they had before other kinds existed.
    path = tmp_path / "squares.parquet"
    write_squares(generate_squares(16, 0.1, 13, False), path)
    assert pq.read_schema(path).remove_metadata().equals(SCHEMA)
    assert b"pipeline.classes" not in (pq.read_schema(path).metadata or {})


@pytest.fixture(scope="module")
def digits_split():
    digits = generate_digits("rows", seed=7)
    return digits.take(np.arange(0, 400)), digits.take(np.arange(400, 600))


def trained(spec: ModelSpec, data, epochs: int = 3) -> torch.nn.Module:
    model = build_model(spec, seed=21)
    train(
        model,
        LabelledSequences.from_squares(data),
        epochs=epochs,
        batch_size=32,
        learning_rate=0.01,
        shuffle_seed=42,
    )
    return model


@pytest.mark.parametrize("arch", ["gru", "conv1d"])
def test_ten_classes_train_with_one_output_per_class_and_cross_entropy(arch, digits_split):
    training, testing = digits_split
    spec = ModelSpec(arch, 8, 1, False, False, **vars(shape_of(training)))
    model = trained(spec, training)
    data = LabelledSequences.from_squares(testing)
    logits = model(data.features, data.lengths)
    assert logits.shape == (len(testing), 10)
    evaluation = evaluate(model, data)
    assert evaluation.confusion.shape == (10, 10)
    assert evaluation.confusion.sum() == len(testing)
    assert np.array_equal(
        evaluation.confusion.sum(axis=1), np.bincount(testing.labels, minlength=10)
    )
    expected = torch.nn.functional.cross_entropy(logits, data.labels).item()
    assert evaluation.loss == pytest.approx(expected)
    assert evaluation.accuracy > 0.3  # three epochs already learn far beyond chance (10%)
    probabilities = predict_proba(model, data)
    assert probabilities.shape == (len(testing), 10)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(len(testing)))
    assert spec.parameter_count() == sum(p.numel() for p in model.parameters())


def test_ten_class_training_is_bit_reproducible_and_its_checkpoint_keeps_the_shape(
    tmp_path, digits_split
):
    training, _ = digits_split
    spec = ModelSpec("conv1d", 4, 1, False, False, kernel_size=3, **vars(shape_of(training)))
    first, second = trained(spec, training, epochs=2), trained(spec, training, epochs=2)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name])
    save_checkpoint(first, spec, tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["n_classes"] == 10 and saved["n_features"] == 8 and saved["kernel_size"] == 3
    assert load_spec(tmp_path) == spec
    assert torch.equal(load_checkpoint(tmp_path).classifier.weight, first.classifier.weight)


def test_a_squares_spec_saves_what_it_saved_before_shapes_existed():
    spec = ModelSpec("gru", 2, 1, False, False)
    assert spec.to_dict() == {
        "arch": "gru",
        "hidden_dim": 2,
        "num_layers": 1,
        "bidirectional": False,
        "packed": False,
    }


@pytest.mark.parametrize("order", ["rows", "pixels_shuffled"])
def test_digits_pictures_are_drawn_and_byte_for_byte_the_same(tmp_path, order):
    digits = generate_digits(order, seed=7)
    training, testing = digits.take(np.arange(0, 300)), digits.take(np.arange(300, 500))
    spec = ModelSpec("gru", 4, 1, False, False, **vars(shape_of(training)))
    model = trained(spec, training, epochs=1).eval()
    history = History(
        epochs=np.array([1, 2]),
        train_loss=np.array([2.0, 1.5]),
        val_loss=np.array([2.1, 1.6]),
        train_accuracy=np.array([0.2, 0.4]),
        val_accuracy=np.array([0.2, 0.35]),
    )
    first = plot_variant("digits", spec, model, testing, history, tmp_path / "a")
    second = plot_variant("digits", spec, model, testing, history, tmp_path / "b")
    assert [path.name for path in first] == sorted(picture_names(spec, "digits"))
    assert {"digits_as_read.png", "digits_final_states.png", "digits_per_class.png"} <= {
        path.name for path in first
    }
    assert "hidden_states.png" not in picture_names(spec, "digits")  # squares' pictures only
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()


@pytest.mark.slow
def test_a_digits_variant_runs_through_the_real_stages_with_ten_classes(tmp_path):
    # generate, split, train, evaluate, plot and report under dvc repro, in a copy of this
    # repository cut to one digits variant: the multi-class path as a user runs it.
    repo = copy_of_this_repository(tmp_path / "repo")
    params = repo.use_small_params(models=("digits_conv1d_rows",))
    assert list(params["datasets"]) == ["digits_rows"]
    (repo.root / "dvc.lock").unlink()
    ran = repo.repro()
    assert "train@digits_conv1d_rows" in ran and "report" in ran
    confusion = json.loads(
        (repo.root / "data/metrics/digits_conv1d_rows.confusion.json").read_text()
    )
    assert confusion["classes"] == list(CLASS_NAMES)
    assert np.array(confusion["confusion"]).shape == (10, 10)
    test = read_squares(repo.root / "data/split/digits_rows/test.parquet")
    assert (
        np.array(confusion["confusion"]).sum(axis=1).tolist()
        == np.bincount(test.labels, minlength=10).tolist()
    )
    config = json.loads((repo.root / "data/models/digits_conv1d_rows/config.json").read_text())
    assert (config["n_features"], config["sequence_length"], config["n_classes"]) == (8, 8, 10)
    predictions = (repo.root / "data/predictions/digits_conv1d_rows.csv").read_text().splitlines()
    assert len(predictions) == len(test) + 1
    assert {line.split(",")[1] for line in predictions[1:]} <= set(CLASS_NAMES)
    plots = {path.name for path in (repo.root / "data/plots/digits_conv1d_rows").iterdir()}
    assert plots == set(
        picture_names(load_spec(repo.root / "data/models/digits_conv1d_rows"), "digits")
    )
    report = (repo.root / "data/report/index.html").read_text()
    assert "1,797 digits, 8 steps of 8 pixels (rows)" in report


def test_the_logged_model_reads_the_datas_features_and_answers_every_class(tmp_path, digits_split):
    training, testing = digits_split
    spec = ModelSpec("gru", 4, 1, False, False, **vars(shape_of(training)))
    model = trained(spec, training, epochs=1).eval()
    save_checkpoint(model, spec, tmp_path)
    write_accepts(tmp_path, extent(training), "avx2")
    with warnings.catch_warnings():  # kernels cannot be pinned again in this process
        warnings.simplefilter("ignore", UserWarning)
        served = load_model_dir(tmp_path)
    rows = pd.DataFrame({"points": [testing.points[0].tolist(), testing.points[1].tolist()]})
    probabilities = served.predict(rows)
    expected = predict_proba(model, LabelledSequences.from_squares(testing.take(np.arange(2))))
    assert probabilities.shape == (2, 10)
    assert np.array_equal(probabilities, expected.numpy())
    with pytest.raises(MlflowException, match="row 0: points must be a list of lists of 8"):
        served.predict(pd.DataFrame({"points": [[[0.0, 1.0]] * 8]}))
