"""Decode and resize every image once; later epochs read raw pixels from a memory map.

Decoding JPEGs every epoch makes a 2-core machine data-bound. The cache stores the output of the
deterministic stage of the transform (``transforms.build_resize``) as a uint8 array
``(N, side, side, 3)`` in a ``.npy`` file opened with ``mmap_mode="r"``, so the operating system
pages it in and DataLoader workers share it for free. Only the random stage runs per epoch.

A cache is keyed by the data fingerprint, the label file, the split and the resolution, and lives
under ``$ANIMESION_CACHE_DIR`` or ``~/.cache/animesion`` -- never inside the dataset folder. It is
built into a temporary folder and renamed into place, so an interrupted build leaves nothing
that a later run would mistake for a cache. Size: N * side^2 * 3 bytes (DAF:re train at 160 px
is about 25 GB; holo14 train, about 0.4 GB).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from animesion_lib.errors import DatasetError

FORMAT_VERSION = 1  # bump when what is stored changes (e.g. the resize method)


def default_cache_dir() -> Path:
    """``$ANIMESION_CACHE_DIR``, else ``~/.cache/animesion``."""
    env = os.environ.get("ANIMESION_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "animesion"


def cache_key(fingerprint: str, split: str, label_file: str, side: int, resize: str) -> str:
    """A readable, unique folder name for one cache."""
    spec = json.dumps([FORMAT_VERSION, fingerprint, split, label_file, side, resize])
    digest = hashlib.sha256(spec.encode()).hexdigest()[:12]
    return f"{fingerprint[:12]}-{split}-{side}px-{digest}"


class DecodedImageCache:
    """A built cache: ``cache[i]`` is image ``i`` of the split as a uint8 array (side, side, 3).

    ``bad`` maps the index of each image that could not be read to the reason; those rows hold
    zeros. Open one with :meth:`open_or_build`.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        meta = json.loads((self.directory / "meta.json").read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise DatasetError("cache written by another version; delete it", path=self.directory)
        self.meta = meta
        self.side: int = meta["side"]
        self.bad: dict[int, str] = {int(i): why for i, why in meta["bad"].items()}
        self._pixels: np.ndarray | None = None  # opened lazily, once per DataLoader worker

    @property
    def pixels(self) -> np.ndarray:
        if self._pixels is None:
            self._pixels = np.load(self.directory / "pixels.npy", mmap_mode="r")
        return self._pixels

    def __len__(self) -> int:
        return self.meta["count"]

    def __getitem__(self, index: int) -> np.ndarray:
        return self.pixels[index]

    def __getstate__(self) -> dict:
        # pickling a memmap copies the whole array into every worker; reopen it there instead
        return {**self.__dict__, "_pixels": None}

    @classmethod
    def open_or_build(
        cls,
        count: int,
        load: Callable[[int], Image.Image],
        *,
        key: str,
        side: int,
        names: Sequence[str],
        cache_dir: str | Path | None = None,
        data_root: str | Path | None = None,
        on_error: str = "raise",
        desc: str = "caching images",
        progress: bool = True,
    ) -> DecodedImageCache:
        """Open the cache ``key`` under ``cache_dir``, building it first if it does not exist.

        ``load(i)`` returns image ``i`` already resized to ``side`` x ``side`` RGB, or raises
        :class:`DatasetError`; with ``on_error="skip"`` such images are recorded in ``bad`` and the
        build goes on, otherwise the build stops and leaves nothing behind. ``names`` label the
        images in ``meta.json`` so that a reader can see what row ``i`` is.
        """
        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        if data_root is not None and _is_inside(cache_dir, Path(data_root)):
            raise DatasetError(
                "the image cache must live outside the dataset folder; set ANIMESION_CACHE_DIR "
                "or pass cache=<path> elsewhere",
                path=cache_dir,
            )
        final = cache_dir / key
        if (final / "meta.json").is_file():
            return cls(final)

        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.building-", dir=cache_dir))
        try:
            bad = _decode_into(tmp / "pixels.npy", count, side, load, on_error, desc, progress)
            meta = {"format": FORMAT_VERSION, "key": key, "side": side, "count": count,
                    "names": list(names), "bad": {str(i): why for i, why in bad.items()}}
            (tmp / "meta.json").write_text(json.dumps(meta))
            tmp.chmod(0o755)  # mkdtemp makes it private; a cache is readable like any other file
            try:
                os.rename(tmp, final)  # atomic: the cache appears whole or not at all
            except OSError:
                if not (final / "meta.json").is_file():  # not a concurrent build that won the race
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return cls(final)


def _decode_into(path: Path, count: int, side: int, load: Callable[[int], Image.Image], on_error: str,
                 desc: str, progress: bool) -> dict[int, str]:
    """Write every image into a uint8 ``.npy`` at ``path``; returns the skipped ones' errors."""
    pixels = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, side, side, 3))
    bad: dict[int, str] = {}
    for i in tqdm(range(count), desc=desc, unit="img", mininterval=1.0, disable=not progress):
        try:
            image = load(i)
        except DatasetError as err:
            if on_error != "skip":
                raise
            bad[i] = str(err)
            continue
        array = np.asarray(image, dtype=np.uint8)
        if array.shape != (side, side, 3):
            raise ValueError(f"load({i}) gave shape {array.shape}, expected {(side, side, 3)}")
        pixels[i] = array
    pixels.flush()
    return bad


def _is_inside(path: Path, folder: Path) -> bool:
    path, folder = path.expanduser().resolve(), folder.expanduser().resolve()
    return path == folder or folder in path.parents
