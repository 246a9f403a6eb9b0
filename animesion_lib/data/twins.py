"""The near-twin pairs of a synthetic dataset: characters told apart by one small detail.

The generator makes some characters "sisters" of the same series that differ in one detail (a
mole, an ahoge, an accessory; see :mod:`animesion_lib.data.synthetic`). Which those are is in the
dataset's ``characters.json`` (``twin_of``); evaluation reports their accuracy separately
(:func:`animesion_lib.metrics.near_twin_metrics`), because a model that blurs the detail away
confuses exactly these.
"""

from __future__ import annotations

import json
from pathlib import Path

from animesion_lib.errors import AnimesionError


def near_twins(root: str | Path, classes: list[str]) -> dict[int, int]:
    """Class id -> its near-twin's class id, for every character of ``root`` that has one (both
    directions); empty for a dataset without ``characters.json`` (real data)."""
    path = Path(root) / "characters.json"
    if not path.is_file():
        return {}
    index = {name: i for i, name in enumerate(classes)}
    pairs = {}
    for row in json.loads(path.read_text()):
        sister = row.get("twin_of")
        if not sister:
            continue
        if row["name"] not in index or sister not in index:
            raise AnimesionError(f"{path}: near-twins {row['name']!r} and {sister!r} are not both among the classes")
        pairs[index[row["name"]]] = index[sister]
        pairs[index[sister]] = index[row["name"]]
    return pairs
