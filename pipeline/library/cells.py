"""RNN, GRU and LSTM cells written from their equations, with every intermediate exposed.

The cells take the weights of torch's own cells and layers and compute the same numbers, so a
trained model's recurrence can be taken apart step by step: which gate opened, what the
candidate was, how much of the old hidden state was kept. Everything is batched over hidden
states, so one step can move a whole grid of hidden-state points (G, H) at once.
"""

from dataclasses import dataclass, fields
from typing import Self

import torch
from torch import Tensor, nn

KINDS = ("rnn", "gru", "lstm")


@dataclass(frozen=True)
class CellWeights:
    """The weights of one recurrent cell, stacked by gate the way torch stacks them.

    weight_ih: (G * H, F), weight_hh: (G * H, H), bias_ih and bias_hh: (G * H,), where the G
    gates are one block for "rnn", (r, z, n) for "gru" and (i, f, g, o) for "lstm".
    """

    kind: str
    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor
    bias_hh: Tensor

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"CellWeights.kind must be one of {KINDS}, got {self.kind!r}")

    @classmethod
    def from_layer(cls, module: nn.RNNBase, layer: int = 0, reverse: bool = False) -> Self:
        """The cell of `module` (nn.RNN, nn.GRU or nn.LSTM) at `layer`, in one direction.

        `reverse=True` takes the backward direction of a bidirectional layer.
        """
        if not 0 <= layer < module.num_layers:
            raise ValueError(f"layer must be in 0..{module.num_layers - 1}, got {layer}")
        if reverse and not module.bidirectional:
            raise ValueError("reverse=True needs a bidirectional layer; this one is not")
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        return cls._from_parameters(module, suffix)

    @classmethod
    def from_cell(cls, cell: nn.RNNCellBase) -> Self:
        """The weights of a single torch cell: nn.RNNCell, nn.GRUCell or nn.LSTMCell.

        Cells without biases get zero biases.
        """
        return cls._from_parameters(cell, suffix="")

    @classmethod
    def _from_parameters(cls, module: nn.Module, suffix: str) -> Self:
        kind = _kind_of(module)
        weight_ih = getattr(module, f"weight_ih{suffix}").detach().clone()
        weight_hh = getattr(module, f"weight_hh{suffix}").detach().clone()
        if module.bias:
            bias_ih = getattr(module, f"bias_ih{suffix}").detach().clone()
            bias_hh = getattr(module, f"bias_hh{suffix}").detach().clone()
        else:
            bias_ih = bias_hh = weight_hh.new_zeros(len(weight_hh))
        return cls(kind, weight_ih, weight_hh, bias_ih, bias_hh)

    @property
    def hidden_dim(self) -> int:
        return self.weight_hh.shape[1]


def _kind_of(module: nn.Module) -> str:
    """The kind of a torch recurrent layer or cell: "rnn", "gru" or "lstm"; an error otherwise."""
    if isinstance(module, nn.LSTM | nn.LSTMCell):
        proj_size = getattr(module, "proj_size", 0)
        if proj_size:
            raise ValueError(f"LSTMs with projections are not supported, got proj_size={proj_size}")
        return "lstm"
    if isinstance(module, nn.GRU | nn.GRUCell):
        return "gru"
    if isinstance(module, nn.RNN | nn.RNNCell):
        if module.nonlinearity != "tanh":
            raise ValueError(f"only tanh RNNs are supported, got {module.nonlinearity!r}")
        return "rnn"
    raise ValueError(f"expected an RNN, GRU or LSTM layer or cell, got {type(module).__name__}")


def _affine(inputs: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """W x + b for a batch of row vectors: inputs (N, D), weight (K, D) -> (N, K)."""
    return inputs @ weight.T + bias


@dataclass(frozen=True)
class RNNStep:
    """One RNN step; every field (N, H), or (N, L, H) when unrolled."""

    input_transform: Tensor
    hidden_transform: Tensor
    hidden: Tensor


@dataclass(frozen=True)
class GRUStep:
    """One GRU step; every field (N, H), or (N, L, H) when unrolled."""

    reset_gate: Tensor
    update_gate: Tensor
    hidden_reset_transform: Tensor
    hidden_update_transform: Tensor
    hidden_candidate_transform: Tensor
    reset_hidden_candidate_transform: Tensor
    candidate: Tensor
    candidate_share: Tensor
    kept_hidden: Tensor
    hidden: Tensor


@dataclass(frozen=True)
class LSTMStep:
    """One LSTM step; every field (N, H), or (N, L, H) when unrolled."""

    input_gate: Tensor
    forget_gate: Tensor
    output_gate: Tensor
    candidate: Tensor
    kept_cell: Tensor
    added_cell: Tensor
    cell: Tensor
    hidden: Tensor


def rnn_step(weights: CellWeights, x: Tensor, hidden: Tensor) -> RNNStep:
    """One step of an Elman RNN cell, x (N, F) or (1, F) and hidden h (N, H):

        t_x = W_ih x + b_ih                             input_transform
        t_h = W_hh h + b_hh                             hidden_transform
        h'  = tanh(t_h + t_x)                           hidden

    A (1, F) input is shared by every hidden state, e.g. a grid of them.
    """
    input_transform = _affine(x, weights.weight_ih, weights.bias_ih)
    hidden_transform = _affine(hidden, weights.weight_hh, weights.bias_hh)
    return RNNStep(
        input_transform=input_transform.expand_as(hidden_transform),
        hidden_transform=hidden_transform,
        hidden=torch.tanh(hidden_transform + input_transform),
    )


def gru_step(weights: CellWeights, x: Tensor, hidden: Tensor) -> GRUStep:
    """One step of a GRU cell, x (N, F) or (1, F) and hidden h (N, H):

        r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)     reset_gate
        z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)     update_gate
        n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))  candidate
        h' = (1 - z) * n + z * h                        hidden

    W_hr h + b_hr, W_hz h + b_hz and W_hn h + b_hn are the hidden_*_transform fields;
    r * (W_hn h + b_hn) is reset_hidden_candidate_transform, (1 - z) * n is candidate_share
    and z * h is kept_hidden.
    """
    input_reset, input_update, input_candidate = _affine(
        x, weights.weight_ih, weights.bias_ih
    ).chunk(3, dim=-1)
    hidden_reset, hidden_update, hidden_candidate = _affine(
        hidden, weights.weight_hh, weights.bias_hh
    ).chunk(3, dim=-1)
    reset_gate = torch.sigmoid(input_reset + hidden_reset)
    update_gate = torch.sigmoid(input_update + hidden_update)
    reset_hidden_candidate = reset_gate * hidden_candidate
    candidate = torch.tanh(input_candidate + reset_hidden_candidate)
    candidate_share = (1 - update_gate) * candidate
    kept_hidden = update_gate * hidden
    return GRUStep(
        reset_gate=reset_gate,
        update_gate=update_gate,
        hidden_reset_transform=hidden_reset,
        hidden_update_transform=hidden_update,
        hidden_candidate_transform=hidden_candidate,
        reset_hidden_candidate_transform=reset_hidden_candidate,
        candidate=candidate,
        candidate_share=candidate_share,
        kept_hidden=kept_hidden,
        hidden=candidate_share + kept_hidden,
    )


def lstm_step(weights: CellWeights, x: Tensor, hidden: Tensor, cell: Tensor) -> LSTMStep:
    """One step of an LSTM cell, x (N, F) or (1, F), hidden h (N, H) and cell state c (N, H):

        i  = sigmoid(W_ii x + b_ii + W_hi h + b_hi)     input_gate
        f  = sigmoid(W_if x + b_if + W_hf h + b_hf)     forget_gate
        g  = tanh(W_ig x + b_ig + W_hg h + b_hg)        candidate
        o  = sigmoid(W_io x + b_io + W_ho h + b_ho)     output_gate
        c' = f * c + i * g                              cell
        h' = o * tanh(c')                               hidden

    f * c is kept_cell and i * g is added_cell.
    """
    gates = _affine(x, weights.weight_ih, weights.bias_ih) + _affine(
        hidden, weights.weight_hh, weights.bias_hh
    )
    input_gate, forget_gate, candidate, output_gate = gates.chunk(4, dim=-1)
    input_gate, forget_gate, output_gate = (
        torch.sigmoid(input_gate),
        torch.sigmoid(forget_gate),
        torch.sigmoid(output_gate),
    )
    candidate = torch.tanh(candidate)
    kept_cell = forget_gate * cell
    added_cell = input_gate * candidate
    new_cell = kept_cell + added_cell
    return LSTMStep(
        input_gate=input_gate,
        forget_gate=forget_gate,
        output_gate=output_gate,
        candidate=candidate,
        kept_cell=kept_cell,
        added_cell=added_cell,
        cell=new_cell,
        hidden=output_gate * torch.tanh(new_cell),
    )


def unroll(
    weights: CellWeights,
    sequences: Tensor,
    hidden: Tensor | None = None,
    cell: Tensor | None = None,
) -> RNNStep | GRUStep | LSTMStep:
    """Run the cell over sequences (N, L, F); every field of the result is stacked to (N, L, H).

    hidden (and, for an LSTM, cell) (N, H) is the initial state, zeros by default as in torch.
    """
    n_sequences, length, _ = sequences.shape
    if length == 0:
        raise ValueError("unroll needs sequences with at least one step, got L = 0")
    zeros = sequences.new_zeros(n_sequences, weights.hidden_dim)
    hidden = zeros if hidden is None else hidden
    cell = zeros if cell is None else cell
    steps = []
    for t in range(length):
        x = sequences[:, t]
        if weights.kind == "lstm":
            step = lstm_step(weights, x, hidden, cell)
            cell = step.cell
        elif weights.kind == "gru":
            step = gru_step(weights, x, hidden)
        else:
            step = rnn_step(weights, x, hidden)
        hidden = step.hidden
        steps.append(step)
    return type(steps[0])(
        **{
            field.name: torch.stack([getattr(step, field.name) for step in steps], dim=1)
            for field in fields(steps[0])
        }
    )
