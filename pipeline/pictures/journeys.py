"""The journey of a hidden state as numbers: how each operation of a cell moves the whole
hidden plane while it reads a square, and the view every panel of a journey picture takes.

The types here are filled by `pipeline.pictures.from_weights` (with torch) and read by the
journey pictures (without it); what a panel shows of the decision boundary is worked out
here, before any drawing, so that the drawing only places what it is handed.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.pictures.planes import Plane


@dataclass(frozen=True)
class Operation:
    """One column of a journey: the formula of what it shows (mathtext), and the gate whose
    values multiply in it, if any (one of GATE_FIELDS)."""

    formula: str
    gate: str | None = None


#: What each column of a journey shows, in order; the first is the hidden state read in.
OPERATIONS = {
    "rnn": (
        Operation(r"$h$"),
        Operation(r"$t_h = W_{hh}h + b_{hh}$"),
        Operation(r"$t_h + t_x$"),
        Operation(r"$h' = \tanh(t_h + t_x)$"),
    ),
    "gru": (
        Operation(r"$h$"),
        Operation(r"$t_{hn} = W_{hn}h + b_{hn}$"),
        Operation(r"$r \odot t_{hn}$", "r"),
        Operation(r"$r \odot t_{hn} + t_{xn}$"),
        Operation(r"$n = \tanh(r \odot t_{hn} + t_{xn})$"),
        Operation(r"$(1 - z) \odot n$", "z"),
        Operation(r"$h' = (1 - z) \odot n + z \odot h$", "z"),
    ),
    "lstm": (
        Operation(r"$h$"),
        Operation(r"$g$ (candidate)"),
        Operation(r"$i \odot g$", "i"),
        Operation(r"$f \odot c$", "f"),
        Operation(r"$c' = f \odot c + i \odot g$"),
        Operation(r"$\tanh(c')$"),
        Operation(r"$h' = o \odot \tanh(c')$", "o"),
    ),
}
#: Each gate's symbol and the field of the cell's step that holds its values.
GATE_FIELDS = {
    "r": "reset_gate",
    "z": "update_gate",
    "i": "input_gate",
    "f": "forget_gate",
    "o": "output_gate",
}
#: The squares whose journeys are drawn, as (label, corner indices): clockwise A, B, C, D and
#: its counter-clockwise counterpart from the same corner, A, D, C, B (the chapter's pair).
JOURNEY_SQUARES = ((1, (0, 1, 2, 3)), (0, (0, 3, 2, 1)))
#: Half-widths a journey panel may have: the chapter's 1.05 (for tanh-bounded operations) and
#: 7.2 (for linear ones), with their halvings and doublings, so that windows compare at a
#: glance; past the last, the content's own half-width plus 5%.
HALF_WIDTHS = (0.15, 0.3, 0.6, 1.05, 1.8, 3.6, 7.2, 14.4, 28.8, 57.6)


@dataclass(frozen=True)
class Reading:
    """Where the classifier reads one direction of a square's journey, in the journey's plane.

    step: the step (0-based) after which the classifier reads this direction; the logit at a
    plane point p is weights @ p + bias, every other direction held at its actual state for
    this square: so the decision boundary, weights @ p + bias = 0, is a line, exact in the plane.
    """

    step: int
    weights: np.ndarray
    bias: float

    def logit(self, points: np.ndarray) -> np.ndarray:
        """The classifier's logit at plane points (..., 2): above 0 reads clockwise."""
        return points @ self.weights + self.bias


@dataclass(frozen=True)
class Journey:
    """How one direction of a recurrent layer moves its hidden plane while reading a square.

    label: the square's label; corners: the corner read at each of the L steps; operations: the
    O columns (OPERATIONS); plane: where it is drawn (its grid spans the plane's extent).
    grids: (L, O, K, S, 2) the K grid lines of S points each after each operation, in the plane;
    states: (L, O, 2) the actual hidden state after each operation, in the plane;
    hidden: (L + 1, H) the actual hidden states h_0 .. h_L, unprojected;
    gates: each gate's values (L, H) at the actual state, by symbol (GATE_FIELDS);
    reading: where and how the classifier reads this direction.
    """

    label: int
    corners: tuple[str, ...]
    operations: tuple[Operation, ...]
    plane: Plane
    grids: np.ndarray
    states: np.ndarray
    hidden: np.ndarray
    gates: dict[str, np.ndarray]
    reading: Reading

    @property
    def reading_panel(self) -> tuple[int, int]:
        """(step, operation) of the panel where the classifier reads the state: the new
        hidden state of the step it reads after."""
        return self.reading.step, len(self.operations) - 1


def grid_lines(extent: float, n_lines: int = 9, n_samples: int = 33) -> np.ndarray:
    """(2 * n_lines, n_samples, 2): a square grid over [-extent, extent]^2 as polylines.

    Vertical lines first, then horizontal ones; enough samples that bent lines look bent.
    """
    positions = np.linspace(-extent, extent, n_lines)
    samples = np.linspace(-extent, extent, n_samples)
    across, along = np.meshgrid(positions, samples, indexing="ij")
    vertical = np.stack([across, along], axis=-1)
    return np.concatenate([vertical, vertical[..., ::-1]])


@dataclass(frozen=True)
class Verdict:
    """What the panel where the classifier reads a journey shows of its decision: the panel's
    window cut by the decision boundary into the counter-clockwise and the clockwise side
    (polygons (k, 2), possibly empty), the boundary's segment (2, 2), or (0, 2) when it misses
    the window, and the classifier's P(clockwise) at the actual state."""

    counter_clockwise: np.ndarray
    clockwise: np.ndarray
    boundary: np.ndarray
    probability: float


@dataclass(frozen=True)
class DirectionJourneys:
    """One direction's journeys through JOURNEY_SQUARES and the view of each of their panels:
    what one journey picture (and its animation) draws.

    direction: "forward" or "backward"; journeys: one per square; windows: (S, L, O, 2, 2) the
    view [[x0, x1], [y0, y1]] of every panel (see panel_windows); verdicts: one per square,
    for its reading panel.
    """

    direction: str
    journeys: tuple[Journey, ...]
    windows: np.ndarray
    verdicts: tuple[Verdict, ...]

    @classmethod
    def of(cls, direction: str, journeys: Sequence[Journey]) -> "DirectionJourneys":
        """`journeys` of `direction` with the windows and verdicts of their panels."""
        windows = panel_windows(journeys)
        verdicts = tuple(
            verdict(journey, square_windows[journey.reading_panel])
            for journey, square_windows in zip(journeys, windows, strict=True)
        )
        return cls(direction, tuple(journeys), windows, verdicts)


def _rung(half: float) -> float:
    """The smallest of HALF_WIDTHS that holds `half`; past the last, `half` plus 5%."""
    return next((rung for rung in HALF_WIDTHS if rung >= half), 1.05 * half)


def panel_windows(journeys: Sequence[Journey]) -> np.ndarray:
    """The view [[x0, x1], [y0, y1]] of every panel (S, L, O, 2, 2) of one direction's journeys.

    A column (an operation) has one size over every step and square, so an operation compares
    at one scale: the smallest of HALF_WIDTHS that holds every panel's content (the moved grid
    and the actual state), so the moved square fills its panels. A window is centred on the
    origin, as the chapter's are, where that holds its content; elsewhere on the nearest
    multiple of its half-width over two that does (so its bounds are round, and windows
    recur), or else on the content.
    """
    content = np.stack(
        [
            np.concatenate(
                [
                    journey.grids.reshape(*journey.grids.shape[:2], -1, 2),
                    journey.states[:, :, None],
                ],
                axis=2,
            )
            for journey in journeys
        ]
    )  # (S, L, O, P, 2)
    low, high = content.min(axis=3), content.max(axis=3)  # (S, L, O, 2)
    halves = np.array([_rung(half) for half in ((high - low) / 2).max(axis=(0, 1, 3))])
    halves = halves[None, None, :, None]
    at_origin = ((-halves <= low) & (high <= halves)).all(axis=-1, keepdims=True)
    centres = (low + high) / 2
    rounded = np.round(centres / (halves / 2)) * (halves / 2)
    rounded_fits = (rounded - halves <= low) & (high <= rounded + halves)
    centres = np.where(at_origin, 0.0, np.where(rounded_fits, rounded, centres))
    return np.stack([centres - halves, centres + halves], axis=-1)


def verdict(journey: Journey, window: np.ndarray) -> Verdict:
    """The decision as the reading panel of `journey` shows it in `window`, [[x0, x1], [y0, y1]].

    Exact: the boundary is a line in the plane, so each side is the window's corners on that
    side plus the points where the boundary crosses its edges.
    """
    (x0, x1), (y0, y1) = window
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    reading = journey.reading
    logits = reading.logit(corners)
    sides, crossings = [], []
    for sign in (-1.0, 1.0):  # keep the corners where sign * logit >= 0, and the crossings
        polygon = []
        for here in range(4):
            there = (here + 1) % 4
            value, next_value = sign * logits[here], sign * logits[there]
            if value >= 0:
                polygon.append(corners[here])
            if (value >= 0) != (next_value >= 0):
                share = value / (value - next_value)
                polygon.append(corners[here] + share * (corners[there] - corners[here]))
                if sign > 0:
                    crossings.append(polygon[-1])
        sides.append(np.array(polygon).reshape(-1, 2))
    logit = float(reading.logit(journey.states[reading.step, -1]))
    return Verdict(
        counter_clockwise=sides[0],
        clockwise=sides[1],
        boundary=np.array(crossings).reshape(-1, 2),
        probability=float(1 / (1 + np.exp(-logit))),
    )
