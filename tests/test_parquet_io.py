"""Parquet I/O: exact round trips, and a clear error for every kind of bad file."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.library.errors import DatasetError
from pipeline.library.squares import (
    SCHEMA,
    Squares,
    generate_squares,
    read_squares,
    to_table,
    write_squares,
)


def assert_same_squares(actual: Squares, expected: Squares) -> None:
    for field in ("seq_ids", "points", "lengths", "labels"):
        assert np.array_equal(getattr(actual, field), getattr(expected, field)), field


@pytest.mark.parametrize("variable_len", [False, True])
def test_round_trip_is_exact(tmp_path, variable_len):
    squares = generate_squares(200, 0.1, seed=11, variable_len=variable_len)
    write_squares(squares, tmp_path / "squares.parquet")
    assert_same_squares(read_squares(tmp_path / "squares.parquet"), squares)


#: Any float64 that training's float32 can hold (read_squares refuses anything beyond).
finite = st.floats(min_value=-3.4e38, max_value=3.4e38, allow_nan=False, width=64)
sequence = st.tuples(st.integers(0, 1), st.lists(st.tuples(finite, finite), min_size=1, max_size=6))


@settings(max_examples=30, deadline=None)
@given(sequences=st.lists(sequence, min_size=1, max_size=20))
def test_round_trip_keeps_any_finite_values(tmp_path_factory, sequences):
    lengths = np.array([len(points) for _, points in sequences])
    padded = np.zeros((len(sequences), lengths.max(), 2))
    for row, (_, points) in enumerate(sequences):
        padded[row, : len(points)] = points
    labels = np.array([label for label, _ in sequences])
    squares = Squares(np.arange(len(sequences)) * 3, padded, lengths, labels)
    path = tmp_path_factory.mktemp("round_trip") / "squares.parquet"
    write_squares(squares, path)
    assert_same_squares(read_squares(path), squares)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e39])
def test_a_point_that_is_not_finite_in_float32_is_refused_naming_its_row(tmp_path, bad):
    squares = generate_squares(6, 0.1, seed=1, variable_len=True)
    squares.points[4, 0, 1] = bad
    write_squares(squares, tmp_path / "s.parquet")
    with pytest.raises(DatasetError, match=r"s\.parquet: row 4 has a point that is NaN, infinite"):
        read_squares(tmp_path / "s.parquet")


def test_an_empty_file_is_refused(tmp_path):
    squares = generate_squares(6, 0.1, seed=1, variable_len=True)
    write_squares(squares.take(np.array([], dtype=np.int64)), tmp_path / "s.parquet")
    with pytest.raises(DatasetError, match=r"s\.parquet: has no rows$"):
        read_squares(tmp_path / "s.parquet")


def test_file_has_one_row_per_sequence_in_the_documented_schema(tmp_path):
    write_squares(generate_squares(5, 0.1, seed=1, variable_len=True), tmp_path / "s.parquet")
    table = pq.read_table(tmp_path / "s.parquet")
    assert table.num_rows == 5
    assert table.schema.equals(SCHEMA)
    row = table.slice(0, 1).to_pylist()[0]
    assert set(row["points"][0]) == {"x0", "x1"}
    assert len(row["points"]) == row["length"]


def test_writing_the_same_squares_twice_gives_the_same_bytes(tmp_path):
    squares = generate_squares(100, 0.1, seed=2, variable_len=True)
    write_squares(squares, tmp_path / "a.parquet")
    write_squares(squares, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match=r"nope\.parquet: file not found"):
        read_squares(tmp_path / "nope.parquet")


def test_truncated_file_is_reported_as_unreadable(tmp_path):
    path = tmp_path / "cut.parquet"
    write_squares(generate_squares(50, 0.1, seed=2, variable_len=False), path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=r"cut\.parquet: not a readable Parquet file"):
        read_squares(path)


def test_text_file_is_reported_as_unreadable(tmp_path):
    path = tmp_path / "text.parquet"
    path.write_text("seq_id,label\n1,0\n")
    with pytest.raises(DatasetError, match=r"text\.parquet: not a readable Parquet file"):
        read_squares(path)


def _table(**replace: pa.Array) -> pa.Table:
    table = to_table(generate_squares(4, 0.1, seed=3, variable_len=True))
    for name, column in replace.items():
        table = table.set_column(table.column_names.index(name), name, column)
    return table


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (_table().drop_columns(["length"]), r"expected columns .*found seq_id, label, points"),
        (_table().append_column("extra", pa.array([1, 2, 3, 4])), r"expected columns"),
        (
            _table(label=pa.array([0, 1, 1, 0], pa.int64())),
            r"column 'label' must be int8, found int64",
        ),
        (_table(label=pa.array([0, 2, 1, 0], pa.int8())), r"column 'label' must hold only 0 and 1"),
        (_table(label=pa.array([0, None, 1, 0], pa.int8())), r"column 'label' has missing values"),
        (_table(length=pa.array([9, 9, 9, 9], pa.int32())), r"row 0 has length 9 but \d points"),
        (
            _table(seq_id=pa.array([3, 2, 1, 0], pa.int64())),
            r"column 'seq_id' must be strictly increasing",
        ),
    ],
)
def test_wrong_schema_or_content_is_reported_with_the_file_name(tmp_path, table, message):
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    with pytest.raises(DatasetError, match=rf"^{path}: {message}"):
        read_squares(path)


def test_null_point_coordinates_are_rejected(tmp_path):
    points = pa.array([[{"x0": 1.0, "x1": None}]], pa.list_(SCHEMA.field("points").type.value_type))
    table = pa.table(
        {
            "seq_id": pa.array([0], pa.int64()),
            "label": pa.array([1], pa.int8()),
            "length": pa.array([1], pa.int32()),
            "points": points,
        }
    )
    pq.write_table(table, tmp_path / "nulls.parquet")
    with pytest.raises(DatasetError, match="column 'points' has missing values"):
        read_squares(tmp_path / "nulls.parquet")


def test_interrupted_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "kept.parquet"
    original = generate_squares(10, 0.1, seed=4, variable_len=False)
    write_squares(original, path)

    def crash(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(KeyboardInterrupt):
        write_squares(generate_squares(10, 0.1, seed=5, variable_len=False), path)
    assert_same_squares(read_squares(path), original)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.parquet"]
