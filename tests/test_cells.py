from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from pipeline.library.cells import (
    CellWeights,
    GRUStep,
    RNNStep,
    gru_step,
    lstm_step,
    rnn_step,
    unroll,
)

N_SEQUENCES, LENGTH, N_FEATURES, HIDDEN_DIM = 5, 6, 3, 4
TOLERANCE = {"rtol": 0, "atol": 1e-6}


def random_cell(cell_class: type[nn.RNNCellBase]) -> nn.RNNCellBase:
    torch.manual_seed(0)
    return cell_class(N_FEATURES, HIDDEN_DIM)


def random_inputs(seed: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(N_SEQUENCES, N_FEATURES, generator=generator)
    hidden = torch.randn(N_SEQUENCES, HIDDEN_DIM, generator=generator)
    cell = torch.randn(N_SEQUENCES, HIDDEN_DIM, generator=generator)
    return x, hidden, cell


@pytest.mark.parametrize(
    ("cell_class", "step_function"), [(nn.RNNCell, rnn_step), (nn.GRUCell, gru_step)]
)
@torch.no_grad()
def test_step_equals_the_torch_cell(
    cell_class: type[nn.RNNCellBase], step_function: Callable[..., RNNStep | GRUStep]
) -> None:
    torch_cell = random_cell(cell_class)
    x, hidden, _ = random_inputs()

    step = step_function(CellWeights.from_cell(torch_cell), x, hidden)

    torch.testing.assert_close(step.hidden, torch_cell(x, hidden), **TOLERANCE)


@torch.no_grad()
def test_lstm_step_equals_torch_lstm_cell() -> None:
    torch_cell = random_cell(nn.LSTMCell)
    x, hidden, cell = random_inputs()

    step = lstm_step(CellWeights.from_cell(torch_cell), x, hidden, cell)

    torch_hidden, torch_cell_state = torch_cell(x, (hidden, cell))
    torch.testing.assert_close(step.hidden, torch_hidden, **TOLERANCE)
    torch.testing.assert_close(step.cell, torch_cell_state, **TOLERANCE)


@torch.no_grad()
def test_gru_intermediates_recombine_into_the_hidden_state() -> None:
    torch_cell = random_cell(nn.GRUCell)
    x, hidden, _ = random_inputs()

    step = gru_step(CellWeights.from_cell(torch_cell), x, hidden)

    # The update gate interpolates between the candidate and the old hidden state.
    torch.testing.assert_close(step.kept_hidden, step.update_gate * hidden)
    torch.testing.assert_close(
        step.reset_hidden_candidate_transform, step.reset_gate * step.hidden_candidate_transform
    )
    torch.testing.assert_close(step.hidden, step.candidate_share + step.kept_hidden)


@torch.no_grad()
def test_one_input_moves_a_whole_grid_of_hidden_states() -> None:
    torch_cell = random_cell(nn.RNNCell)
    x = torch.tensor([[0.5, -1.0, 2.0]])  # (1, F), shared by every grid point
    grid = torch.linspace(-1, 1, 7 * HIDDEN_DIM).view(7, HIDDEN_DIM)  # (G, H)

    step = rnn_step(CellWeights.from_cell(torch_cell), x, grid)

    assert step.hidden.shape == step.input_transform.shape == (7, HIDDEN_DIM)
    torch.testing.assert_close(step.hidden, torch_cell(x.expand(7, -1), grid), **TOLERANCE)


def layer_by_hand(module: nn.RNNBase, sequences: Tensor) -> tuple[Tensor, Tensor]:
    """Output (N, L, D * H) and final hidden states (layers * D, N, H) of `module`, by unroll.

    The reverse direction reads the sequence backwards and writes its outputs back in order;
    each layer above the first reads both directions' outputs, concatenated.
    """
    layer_input = sequences
    final_hidden = []
    for layer in range(module.num_layers):
        outputs = []
        for reverse in [False, True][: 1 + module.bidirectional]:
            weights = CellWeights.from_layer(module, layer=layer, reverse=reverse)
            read = layer_input.flip(1) if reverse else layer_input
            hidden = unroll(weights, read).hidden  # (N, L, H)
            final_hidden.append(hidden[:, -1])
            outputs.append(hidden.flip(1) if reverse else hidden)
        layer_input = torch.cat(outputs, dim=-1)
    return layer_input, torch.stack(final_hidden)


@pytest.mark.parametrize("layer_class", [nn.RNN, nn.GRU, nn.LSTM])
@torch.no_grad()
def test_unrolled_cells_equal_a_two_layer_bidirectional_torch_layer(
    layer_class: type[nn.RNNBase],
) -> None:
    torch.manual_seed(0)
    module = layer_class(N_FEATURES, HIDDEN_DIM, num_layers=2, bidirectional=True, batch_first=True)
    sequences = torch.randn(N_SEQUENCES, LENGTH, N_FEATURES)

    output, final_hidden = layer_by_hand(module, sequences)

    torch_output, torch_final = module(sequences)
    torch_final_hidden = torch_final[0] if layer_class is nn.LSTM else torch_final
    torch.testing.assert_close(output, torch_output, **TOLERANCE)
    torch.testing.assert_close(final_hidden, torch_final_hidden, **TOLERANCE)


@torch.no_grad()
def test_unrolled_lstm_cell_state_equals_torch_final_cell_state() -> None:
    torch.manual_seed(0)
    module = nn.LSTM(N_FEATURES, HIDDEN_DIM, batch_first=True)
    sequences = torch.randn(N_SEQUENCES, LENGTH, N_FEATURES)

    steps = unroll(CellWeights.from_layer(module), sequences)

    _, (_, torch_cell_state) = module(sequences)
    assert steps.cell.shape == (N_SEQUENCES, LENGTH, HIDDEN_DIM)
    torch.testing.assert_close(steps.cell[:, -1], torch_cell_state[0], **TOLERANCE)


def test_unroll_starts_from_the_given_hidden_state() -> None:
    torch_cell = random_cell(nn.GRUCell)
    x, hidden, _ = random_inputs()

    steps = unroll(CellWeights.from_cell(torch_cell), x[:, None], hidden=hidden)

    with torch.no_grad():
        torch.testing.assert_close(steps.hidden[:, 0], torch_cell(x, hidden), **TOLERANCE)


def test_reverse_weights_of_a_unidirectional_layer_are_refused() -> None:
    module = nn.GRU(N_FEATURES, HIDDEN_DIM)

    with pytest.raises(ValueError, match="bidirectional"):
        CellWeights.from_layer(module, reverse=True)


def test_relu_rnn_is_refused() -> None:
    with pytest.raises(ValueError, match="tanh"):
        CellWeights.from_cell(nn.RNNCell(N_FEATURES, HIDDEN_DIM, nonlinearity="relu"))
