"""Turn character tags into folder names that are safe on every file system, deterministically.

Danbooru character tags are mostly ASCII (``hatsune_miku``, ``saber_(fate)``), but some contain
``/``, ``:``, ``?``, quotes, non-ASCII letters or trailing dots, and two tags may differ only in
case, which collides on macOS and Windows. The rule:

1. NFKC-normalise; keep ASCII letters, digits and ``_ - . ( ) + !``; every other character
   (``/``, ``:``, quotes, commas, spaces, non-ASCII) becomes ``_``; leading/trailing dots and spaces are stripped; an empty result or a
   Windows reserved device name (``con``, ``nul``, ``com1``...) gets a ``_`` prefix; at most
   100 characters.
2. Names that then collide case-insensitively (``a/b`` and ``a?b`` both give ``a_b``) *all* get
   ``~`` and the first 8 hex digits of the SHA-1 of the original tag appended, so that the
   result does not depend on the order in which tags were seen.

The mapping from class id to the original tag is kept in ``classid_classname.csv``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable

MAX_LENGTH = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-.()+!]")
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{d}{i}" for d in ("com", "lpt") for i in range(1, 10)}


def sanitise(name: str) -> str:
    """One tag -> a safe folder name (before collisions are resolved)."""
    text = _UNSAFE.sub("_", unicodedata.normalize("NFKC", name))
    text = text.strip(". ")[:MAX_LENGTH].rstrip(". ")
    if not text or text.split(".")[0].lower() in _RESERVED:
        text = "_" + text
    return text


def _suffix(name: str, digits: int) -> str:
    return "~" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:digits]


def safe_folder_names(names: Iterable[str]) -> dict[str, str]:
    """Map every distinct name to a unique, safe folder name (see the module docstring)."""
    names = sorted(set(names))
    result = {name: sanitise(name) for name in names}
    for digits in (8, 16, 40):  # widen the hash in the (astronomically rare) case it collides
        groups: dict[str, list[str]] = defaultdict(list)
        for name, folder in result.items():
            groups[folder.casefold()].append(name)
        clashes = [members for members in groups.values() if len(members) > 1]
        if not clashes:
            return result
        for members in clashes:
            for name in members:
                result[name] = sanitise(name)[: MAX_LENGTH - 41] + _suffix(name, digits)
    raise RuntimeError("could not make folder names unique")  # unreachable with SHA-1
