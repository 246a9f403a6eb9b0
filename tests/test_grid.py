"""One-knob-at-a-time grids share the base run and vary one setting at a time."""

import pytest

from animesion_lib.analysis.grid import knob_values, one_at_a_time


def test_base_is_shared_and_each_run_changes_one_knob():
    base = {"image_size": 32, "depth": 4, "lr": 1e-3}
    runs = one_at_a_time(base, {"image_size": [16, 32, 48], "depth": [2, 4]})
    names = [n for n, _ in runs]
    assert names == ["base", "image_size-16", "image_size-48", "depth-2"]
    for name, cfg in runs[1:]:
        changed = [k for k in base if cfg[k] != base[k]]
        assert len(changed) == 1 and name.startswith(changed[0])
    assert knob_values(runs, "image_size") == [("image_size-16", 16), ("base", 32), ("image_size-48", 48)]


def test_unknown_knob_is_an_error():
    with pytest.raises(ValueError, match="patch_size"):
        one_at_a_time({"depth": 4}, {"patch_size": [4, 8]})
