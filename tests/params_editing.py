"""Editing params in tests: a deep copy with one dotted key set or removed."""

import copy
from typing import Any


def _parent(params: dict, dotted: str) -> tuple[dict, str]:
    *parents, last = dotted.split(".")
    for key in parents:
        params = params[key]
    return params, last


def set_key(params: dict, dotted: str, value: Any) -> dict:
    """A deep copy of `params` with `dotted` ("models.gru.seed") set to `value`."""
    edited = copy.deepcopy(params)
    parent, key = _parent(edited, dotted)
    parent[key] = value
    return edited


def drop_key(params: dict, dotted: str) -> dict:
    """A deep copy of `params` without `dotted`."""
    edited = copy.deepcopy(params)
    parent, key = _parent(edited, dotted)
    del parent[key]
    return edited
