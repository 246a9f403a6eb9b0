"""Put one source image into the dataset folder: resized, hard-linked or copied.

Run in a process pool by the dataset builder (decoding JPEGs is CPU-bound, so threads would not
help). Each task returns what happened instead of raising, so that one unreadable file is
reported, excluded and counted rather than stopping a build of millions of images.

Resizing follows DAFull's ``fullMin256``: the *shorter* side becomes ``size`` pixels (aspect
ratio kept, never upscaled), saved as RGB JPEG. JPEG ``draft`` mode lets the decoder skip
resolution it would throw away, which makes downscaling 512px sources several times faster.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

IMAGE_MODES = ("resize", "link", "copy")


@dataclass(frozen=True)
class ExportTask:
    post_id: int
    source: str  # absolute path of the source image
    target: str  # absolute path to write


@dataclass(frozen=True)
class ExportResult:
    post_id: int
    status: str  # "ok", "image_missing" or "image_unreadable"
    width: int | None = None
    height: int | None = None
    detail: str = ""


def resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """Shorter side -> ``size`` (never larger than the source)."""
    short = min(width, height)
    if short <= size:
        return width, height
    scale = size / short
    return max(1, round(width * scale)), max(1, round(height * scale))


def export_image(task: ExportTask, mode: str, size: int, quality: int = 90) -> ExportResult:
    """Do one task; never raises for a bad image, returns its status instead."""
    from PIL import Image, UnidentifiedImageError

    source, target = Path(task.source), Path(task.target)
    if not source.is_file():
        return ExportResult(task.post_id, "image_missing", detail=str(source))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(source) as image:
            if mode == "resize":
                width, height = resized_size(image.width, image.height, size)
                image.draft("RGB", (width, height))  # JPEG: decode at a reduced scale
                image = image.convert("RGB")
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.BICUBIC)
                image.save(target, "JPEG", quality=quality)
                return ExportResult(task.post_id, "ok", width, height)
            # link / copy: reading the header is enough to reject a file that is not an image
            width, height = image.size
            image.verify()
        if mode == "link":
            try:
                os.link(source, target)
            except OSError:  # another file system, or links not allowed: fall back to a copy
                shutil.copyfile(source, target)
        else:
            shutil.copyfile(source, target)
        return ExportResult(task.post_id, "ok", width, height)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        # PIL raises OSError for truncated data, SyntaxError for some corrupt headers
        target.unlink(missing_ok=True)
        return ExportResult(task.post_id, "image_unreadable", detail=f"{source}: {err}")


def _export_star(args: tuple[ExportTask, str, int, int]) -> ExportResult:
    return export_image(*args)


def export_images(
    tasks: list[ExportTask], mode: str, size: int, workers: int, quality: int = 90, pool=None
) -> list[ExportResult]:
    """Run a block of tasks on ``pool`` (a multiprocessing pool) or inline when ``workers <= 1``."""
    if mode not in IMAGE_MODES:
        raise ValueError(f"image mode must be one of {IMAGE_MODES}, got {mode!r}")
    jobs = [(task, mode, size, quality) for task in tasks]
    if pool is None or workers <= 1:
        return [_export_star(job) for job in jobs]
    return list(pool.imap_unordered(_export_star, jobs, chunksize=32))
