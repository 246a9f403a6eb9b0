"""One-knob-at-a-time grids: the Animesion hyper-parameter study's design at any scale.

Animesion varies one setting at a time (image size, batch size, depth, patch size) around a
base configuration. ``one_at_a_time`` lists those runs, sharing the base point between knobs so
that it is trained once.

    runs = one_at_a_time({"image_size": 32, "depth": 4}, {"image_size": [16, 32, 48], "depth": [2, 4]})
    # [("base", {...}), ("image_size-16", {...}), ("image_size-48", {...}), ("depth-2", {...})]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def one_at_a_time(base: Mapping[str, Any], grids: Mapping[str, Sequence[Any]]) -> list[tuple[str, dict[str, Any]]]:
    """``[(run name, full settings)]``: the base, then each knob's other values, base kept elsewhere.

    Raises ValueError for a knob the base does not set (its base value would be undefined).
    """
    unknown = sorted(set(grids) - set(base))
    if unknown:
        raise ValueError(f"grid knobs {unknown} are not in the base configuration {sorted(base)}")
    runs = [("base", dict(base))]
    for knob, values in grids.items():
        for value in values:
            if value != base[knob]:
                runs.append((f"{knob}-{value}", {**base, knob: value}))
    return runs


def knob_values(runs: Sequence[tuple[str, Mapping[str, Any]]], knob: str) -> list[tuple[str, Any]]:
    """The runs that vary ``knob`` (the base included), as ``(run name, value)`` sorted by value."""
    picked = [(name, cfg[knob]) for name, cfg in runs if name == "base" or name.startswith(f"{knob}-")]
    return sorted(picked, key=lambda item: item[1])


__all__ = ["knob_values", "one_at_a_time"]
