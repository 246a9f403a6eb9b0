"""A fingerprint of a dataset folder, cited by every results record and keying the image cache.

sha256 over: the bytes of every label file the layout defines (split files, tag files, class
file) and the sorted list of image files with their sizes. Sizes are cheap (one ``stat`` each)
and catch an image re-encoded under the same name; modification times are left out so that a
copy of the same data on another machine has the same fingerprint.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from animesion_lib.data.layout import class_file, get_layout, image_root, split_file
from animesion_lib.errors import DatasetError


def _label_files(root: Path, layout: str) -> list[Path]:
    lay = get_layout(layout)
    files = [class_file(root, lay)]
    for split in lay.splits:
        files += [split_file(root, lay, split), split_file(root, lay, split, with_tags=True)]
    return [f for f in files if f.is_file()]


def _image_files(folder: Path):
    """Yield (relative posix path, size) for every file under ``folder``, in no fixed order."""
    stack = [folder]
    while stack:  # os.scandir is several times faster than Path.rglob on big folders
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir():
                    stack.append(Path(entry.path))
                elif entry.is_file():
                    rel = Path(entry.path).relative_to(folder).as_posix()
                    yield rel, entry.stat().st_size


def data_fingerprint(root: str | Path, layout: str = "dafre_faces") -> str:
    """Hex sha256 of the label files and the sorted image file list of ``root``."""
    root = Path(root).absolute()
    images = image_root(root, layout)
    if not images.is_dir():
        raise DatasetError(f"image folder not found for layout {layout!r}", path=images)
    digest = hashlib.sha256()
    digest.update(f"layout={get_layout(layout).image_dir}\n".encode())
    for path in _label_files(root, layout):
        # names are relative so that the fingerprint does not depend on where the data lives
        digest.update(f"file={path.relative_to(root).as_posix()}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for rel, size in sorted(_image_files(images)):
        digest.update(f"{rel}\t{size}\n".encode())
    return digest.hexdigest()
