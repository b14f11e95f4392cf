"""The numbers the digits pictures draw, computed from a trained variant on digits (torch):
a few test images as drawn and as read, what the classifier reads for every test image in
their principal plane, and the predictions per class."""

import numpy as np
import torch
from torch import nn

from pipeline.library.digits import unread
from pipeline.library.squares import Squares
from pipeline.library.training import LabelledSequences, predicted_labels
from pipeline.pictures.digits import SHOWN, DigitsSpace, principal_plane


@torch.no_grad()
def digits_space(model: nn.Module, test: Squares) -> DigitsSpace:
    """Every number the digits pictures draw, for `model` on the test digits `test`."""
    model.eval()
    data = LabelledSequences.from_squares(test)
    states = model.final_states(data.features, data.lengths)
    predicted = predicted_labels(model.classifier(states)).view(-1).long().numpy()
    plane, explained = principal_plane(states.double().numpy())
    classes = test.classes
    shown = [int(np.flatnonzero(test.labels == label)[0]) for label in range(SHOWN)]
    order, seed = test.about.get("order", "pixels"), int(test.about.get("seed", "0"))
    # Step t at line t // 8, column t % 8: 8 steps to a line, as the image has 8 pixels.
    read = test.points[shown].reshape(len(shown), 8, 8)
    images = unread(test.points[shown], test.seq_ids[shown], order, seed)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (test.labels, predicted), 1)
    return DigitsSpace(
        order,
        images,
        read,
        test.labels[shown],
        plane,
        explained,
        test.labels,
        predicted,
        classes,
        confusion,
    )
