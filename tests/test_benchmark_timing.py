"""The benchmarks' timing rules hold: warm-up untimed, interleaved rounds, ratios of printed figures."""

import pytest

from benchmarks.timing import Ratio, Side, Summary, interleave, rounded, show


def test_every_side_warms_up_once_then_runs_once_a_round_in_alternating_order() -> None:
    calls: list[str] = []
    sides = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}

    runs = interleave(sides, repeats=3)

    warm_up, rounds = calls[:3], calls[3:]
    assert warm_up == ["a", "b", "c"]
    assert rounds == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert {name: len(seconds) for name, seconds in runs.seconds.items()} == {
        "a": 3,
        "b": 3,
        "c": 3,
    }


def test_prepare_and_after_stay_outside_the_clock_and_see_every_run() -> None:
    prepared: list[int] = []
    seen: list[int] = []

    def prepare() -> int:
        prepared.append(len(prepared))
        return prepared[-1]

    runs = interleave({"side": Side(lambda n: n * 10, prepare=prepare, after=seen.append)}, 2)

    assert prepared == [0, 1, 2]  # the warm-up's, then one per round
    assert seen == [0, 10, 20]
    assert len(runs.seconds["side"]) == 2


def test_a_printed_ratio_is_recomputable_from_the_printed_seconds() -> None:
    baseline, ours = [2.0234, 1.2409, 2.8], [0.53812, 0.3181, 0.75799]

    ratio = Ratio.of(baseline, ours)
    medians = Summary.of(baseline), Summary.of(ours)

    printed = float(show(medians[0].median)) / float(show(medians[1].median))
    assert ratio.of_medians == pytest.approx(printed, rel=1e-12)
    assert (show(medians[0].median), show(medians[1].median)) == ("2.02", "0.538")
    assert ratio.low == pytest.approx(
        min(rounded(a) / rounded(b) for a, b in zip(baseline, ours, strict=True))
    )


@pytest.mark.parametrize(
    ("value", "printed"),
    [(0.0123456, "0.0123"), (1.23456, "1.23"), (151.4, "151"), (1234.5, "1234")],
)
def test_seconds_are_shown_to_three_significant_digits(value: float, printed: str) -> None:
    assert show(value) == printed


def test_a_summary_of_one_run_prints_no_range_and_a_ratio_needs_paired_runs() -> None:
    assert Summary.of([0.5]).cell() == "0.500"
    with pytest.raises(ValueError, match="pairs runs"):
        Ratio.of([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least 1"):
        interleave({"a": lambda: None}, repeats=0)
