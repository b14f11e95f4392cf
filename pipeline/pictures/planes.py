"""The planes a hidden space is drawn in, and the classifier's decision over one, as numbers.

A hidden space of more than two dimensions is drawn in a plane: for the decision boundary,
the plane of the classifier's direction and the states' main spread across it (so the
boundary stays exact); for a journey, the plane of the states' first two principal
components. Nothing here needs torch: the pictures read these types without importing it.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Plane:
    """The plane a D-dimensional hidden space is drawn in, and the square of it worth drawing.

    mean: (D,), components: (2, D) orthonormal rows, axis_names: what each row is; explained:
    (2,) the fraction of the states' variance along each axis, or None when the hidden space
    is the plane itself (D = 2); extent: half the side of [-extent, extent]^2, which holds
    the fitted states.
    """

    mean: np.ndarray
    components: np.ndarray
    axis_names: tuple[str, str]
    explained: np.ndarray | None
    extent: float

    def project(self, states: np.ndarray) -> np.ndarray:
        """States (..., D) as points (..., 2) in the plane."""
        return (states - self.mean) @ self.components.T

    def lift(self, points: np.ndarray) -> np.ndarray:
        """Points (..., 2) of the plane as states (..., D) of the hidden space."""
        return self.mean + points @ self.components

    @property
    def axis_labels(self) -> tuple[str, str]:
        """What the plane's axes are, for a reader, with the variance each keeps."""
        if self.explained is None:
            return self.axis_names
        return tuple(
            f"{name} ({fraction:.0%} of variance)"
            for name, fraction in zip(self.axis_names, self.explained, strict=True)
        )


def fit_plane(states: np.ndarray, normal: np.ndarray | None = None) -> Plane:
    """The plane to draw states (M, D) in: the hidden space itself when D = 2, else PCA's.

    With a classifier's weight vector as `normal` (D,), the first axis is that direction and
    the second the states' main direction across it: the decision boundary is then exact in
    the plane, where the top two principal components may all but miss it.
    """
    dimensions = states.shape[1]
    if dimensions < 2:
        raise ValueError(f"hidden-space figures need hidden_dim >= 2, got {dimensions}")
    if dimensions == 2:
        mean, components = np.zeros(2), np.eye(2)
        axis_names, explained = ("$h_0$", "$h_1$"), None
    else:
        mean = states.mean(axis=0)
        centred = states - mean
        if normal is None:
            components = _principal_directions(centred, 2)
            axis_names = ("PC1", "PC2")
        else:
            first = normal / np.linalg.norm(normal)
            across = centred - np.outer(centred @ first, first)
            components = np.stack([first, _principal_directions(across, 1)[0]])
            axis_names = ("classifier direction", "main direction across it")
        explained = ((centred @ components.T) ** 2).sum(axis=0) / (centred**2).sum()
    extent = max(1.0, float(np.abs((states - mean) @ components.T).max()))
    return Plane(mean, components, axis_names, explained, extent)


def _principal_directions(centred: np.ndarray, count: int) -> np.ndarray:
    """The top `count` principal directions (count, D) of centred rows (M, D).

    Signs are fixed (largest loading positive) so that refits draw the same way round.
    """
    directions = np.linalg.svd(centred, full_matrices=False)[2][:count]
    largest = np.abs(directions).argmax(axis=1)
    return directions * np.sign(directions[np.arange(count), largest])[:, None]


@dataclass(frozen=True)
class Boundary:
    """The classifier's P(clockwise) over the square [-limit, limit]^2 of a plane: the view the
    hidden-space figures draw, shaded by probability with the decision boundary's 0.5 line.

    coordinates: (R,) from -limit to limit; probabilities: (R, R), [i, j] at x =
    coordinates[j], y = coordinates[i].
    """

    limit: float
    coordinates: np.ndarray
    probabilities: np.ndarray
