"""What the pictures of a Conv1d variant draw, as numbers: its filters and the edge features
they compute for the test sequences. `pipeline.pictures.from_weights` fills it (with torch);
the pictures only read it."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConvSpace:
    """kernels: (C, 2, 2) each filter's weights, [filter, coordinate, point]; biases: (C,);
    features: (N, C, L - 1) ReLU(conv) of each test sequence, per filter and segment (the
    pair of points t and t + 1); segment_weights: (C, L - 1) the classifier's weight of each
    feature; labels: (N,) the test sequences'."""

    kernels: np.ndarray
    biases: np.ndarray
    features: np.ndarray
    segment_weights: np.ndarray
    labels: np.ndarray
