"""The weekly gates: every output's md5 as committed, every variant over its accuracy floor."""

import json

from pipeline.tools.verify import accuracy_shortfalls, compare_outputs

FLOORS = {"default": 0.97, "variants": {"gru_shuffled": 0.0}}


def test_a_variant_under_its_floor_or_without_metrics_is_named(tmp_path):
    (tmp_path / "gru.json").write_text(json.dumps({"test_accuracy": 0.96}))
    (tmp_path / "gru_shuffled.json").write_text(json.dumps({"test_accuracy": 0.4}))
    (tmp_path / "lstm.json").write_text(json.dumps({"test_accuracy": 1.0}))
    problems = accuracy_shortfalls(tmp_path, ["gru", "gru_shuffled", "lstm", "rnn"], FLOORS)
    assert problems == [
        "gru: test accuracy 0.9600 is under its floor 0.97",
        f"{tmp_path / 'rnn.json'}: missing",
    ]


def test_outputs_that_differ_or_exist_on_one_side_only_are_named():
    expected = {"a": "1", "b": "2", "c": "3"}
    actual = {"a": "1", "b": "9", "d": "4"}
    assert compare_outputs(expected, actual) == [
        "b: md5 2 in dvc.lock, 9 rerun",
        "c: in dvc.lock but not produced by the rerun",
        "d: produced by the rerun but not in dvc.lock",
    ]
