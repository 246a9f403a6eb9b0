"""Time and peak memory of `animesion build-dataset` on synthetic Danbooru2021-shaped metadata.

Two measurements, each in a fresh child process so that its peak RSS is its own:

1. metadata stages on ``--posts`` posts (default 1,000,000), as a dry run: read and parse the
   JSON lines, every post filter, class counting, splits, tag filters, writing the label files.
   No image is touched (the metadata points at files that do not exist).
2. the image stage on ``--images`` real JPEGs (default 2,000, 512px like Danbooru2021's 512px
   set), resized to 256 and hard-linked, to get a per-image cost.

Both are extrapolated linearly to Danbooru2021 (about 4.9M posts; the Dan:mul recipe keeps about
1.6M images). The generated posts look like the real dump: ids and categories as strings, ~30
general tags from a Zipf-distributed vocabulary, copyright/artist/meta tags, and a character
distribution with a long tail, posts without a character and posts with several.

    python benchmarks/build_dataset.py                      # 1M posts + 2,000 images
    python benchmarks/build_dataset.py --posts 200000 --images 500 --workers 2

Prints tables; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DANBOORU2021_POSTS = 4_900_000
DANMUL_IMAGES = 1_616_238


def _zipf_sampler(n: int, s: float, rng: random.Random):
    weights = [1.0 / (k + 1) ** s for k in range(n)]
    cumulative, total = [], 0.0
    for w in weights:
        total += w
        cumulative.append(total)

    def draw(k: int) -> list[int]:
        return rng.choices(range(n), cum_weights=cumulative, k=k)

    return draw


def write_metadata(path: Path, posts: int, seed: int = 0, characters: int = 40_000,
                   vocabulary: int = 60_000) -> int:
    """A Danbooru2021-dump-shaped JSON-lines file; returns its size in bytes."""
    rng = random.Random(seed)
    draw_general = _zipf_sampler(vocabulary, 1.0, rng)
    draw_character = _zipf_sampler(characters, 1.05, rng)
    # pre-rendered JSON fragments keep generation fast; the content is what a real line has
    general = [f'{{"id":"{i}","name":"tag_{i}","category":"0"}}' for i in range(vocabulary)]
    chars = [f'{{"id":"{i}","name":"character_{i}","category":"4"}}' for i in range(characters)]
    series = [f'{{"id":"{i}","name":"series_{i}","category":"3"}}' for i in range(2_000)]
    artists = [f'{{"id":"{i}","name":"artist_{i}","category":"1"}}' for i in range(20_000)]
    meta = [f'{{"id":"{i}","name":"meta_{i}","category":"5"}}' for i in range(50)]
    with open(path, "w", encoding="utf-8") as f:
        for post_id in range(1, posts + 1):
            roll = rng.random()
            n_chars = 0 if roll < 0.3 else (1 if roll < 0.85 else rng.randint(2, 4))
            ids = draw_character(n_chars)
            tags = [general[i] for i in set(draw_general(rng.randint(15, 45)))]
            tags += [chars[i] for i in ids]
            tags.append(series[ids[0] % 2_000] if ids else series[rng.randrange(2_000)])
            tags.append(artists[rng.randrange(20_000)])
            tags += [meta[rng.randrange(50)] for _ in range(2)]
            f.write(
                f'{{"id":"{post_id}","created_at":"2019-01-01 00:00:00.000 UTC","rating":"'
                f'{rng.choice("sqe")}","image_width":"{rng.randint(400, 3000)}","image_height":"'
                f'{rng.randint(400, 3000)}","file_ext":"jpg","md5":"{post_id:032x}",'
                f'"score":"{rng.randint(0, 50)}","is_deleted":false,"tags":[{",".join(tags)}]}}\n'
            )
    return path.stat().st_size


def write_images(root: Path, count: int, seed: int = 1) -> Path:
    """``count`` 512px JPEGs in the 512px/ layout, 40 characters, and their metadata."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(384, 512, 3), dtype=np.uint8)
    lines = []
    for post_id in range(1, count + 1):
        path = root / "512px" / f"{post_id % 1000:04d}" / f"{post_id}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        # a smooth image with noise compresses like an illustration, not like pure noise
        image = (base // 4 + post_id % 200).astype(np.uint8)
        Image.fromarray(image).save(path, quality=90)
        tags = [{"name": f"tag_{i}", "category": "0"} for i in range(post_id % 7, post_id % 7 + 25)]
        tags.append({"name": f"character_{post_id % 40}", "category": "4"})
        lines.append(json.dumps({"id": str(post_id), "rating": "s", "tags": tags}))
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root / "metadata.jsonl"


_CHILD = """
import json, resource, sys, time
from animesion_lib.data.danbooru import build_dataset, preset_config
import_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the libraries alone
meta, images, out, overrides = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
start = time.perf_counter()
stats = build_dataset(meta, images if images != "-" else None, out, preset_config("danmul", **overrides))
wall = time.perf_counter() - start
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"wall_s": wall, "peak_rss_mb": peak_kb / 1024, "import_rss_mb": import_kb / 1024, "timings": stats["timings_s"],
                  "images": stats["table2"]["images"], "classes": stats["table2"]["classes"],
                  "tags_per_image": stats["table2"]["tags_per_image"], "posts": stats["posts_read"]}))
"""


def run_child(meta: Path, images: Path | None, out: Path, **overrides) -> dict:
    """One build in a fresh interpreter; its own wall time and peak RSS (pool workers excluded)."""
    overrides.setdefault("progress", False)
    command = [sys.executable, "-c", _CHILD, str(meta), str(images or "-"), str(out),
               json.dumps(overrides)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--images", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--memory-limit", default="2GB")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="animesion-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"posts": args.posts, "images": args.images, "workers": args.workers,
                    "cpus": os.cpu_count()}
    try:
        meta = work / "posts.jsonl"
        start = time.perf_counter()
        size = write_metadata(meta, args.posts)
        print(f"generated {args.posts:,} posts ({size / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - start:.0f} s")
        dry = run_child(meta, None, work / "dry", dry_run=True, memory_limit=args.memory_limit)
        report["metadata"] = {**dry, "file_mib": round(size / 2**20, 1)}

        src = work / "images"
        write_images(src, args.images)
        resized = run_child(src / "metadata.jsonl", src, work / "resized", image_mode="resize",
                            workers=args.workers, min_tag_count=1, min_images=1)
        linked = run_child(src / "metadata.jsonl", src, work / "linked", image_mode="link",
                           workers=args.workers, min_tag_count=1, min_images=1)
        report["resize"], report["link"] = resized, linked
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    scale = DANBOORU2021_POSTS / args.posts
    per_resize = resized["timings"]["export_images"] / max(resized["images"], 1)
    per_link = linked["timings"]["export_images"] / max(linked["images"], 1)
    t = dry["timings"]
    rows = [
        ("metadata stages (dry run)", f"{args.posts:,} posts", f"{dry['wall_s']:.1f} s",
         f"{dry['peak_rss_mb']:.0f} MiB", f"{dry['wall_s'] * scale / 60:.1f} min"),
        ("  read + parse JSON", "", f"{t['read_metadata']:.1f} s", "", f"{t['read_metadata'] * scale / 60:.1f} min"),
        ("  filters, splits, tags, labels", "",
         f"{dry['wall_s'] - t['read_metadata']:.1f} s", "",
         f"{(dry['wall_s'] - t['read_metadata']) * scale / 60:.1f} min"),
        ("image stage: resize to 256", f"{resized['images']:,} images",
         f"{resized['timings']['export_images']:.1f} s", f"{resized['peak_rss_mb']:.0f} MiB",
         f"{per_resize * DANMUL_IMAGES / 3600:.1f} h for {DANMUL_IMAGES:,}"),
        ("image stage: hard link", f"{linked['images']:,} images",
         f"{linked['timings']['export_images']:.1f} s", f"{linked['peak_rss_mb']:.0f} MiB",
         f"{per_link * DANMUL_IMAGES / 60:.1f} min for {DANMUL_IMAGES:,}"),
    ]
    print(f"\nbuild-dataset on {os.cpu_count()} CPU cores, {args.workers} image workers. Peak RSS "
          f"of the main process (pool workers are separate); importing the libraries alone "
          f"(animesion_lib.data pulls in torch) takes {dry['import_rss_mb']:.0f} MiB of it.\n")
    header = ("stage", "size", "time", "peak RSS", f"extrapolated to Danbooru2021 ({DANBOORU2021_POSTS / 1e6:.1f}M posts)")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    print(f"\nkept by the danmul preset on the synthetic posts: {dry['images']:,} images, "
          f"{dry['classes']:,} characters, {dry['tags_per_image']:.1f} tags/image")
    report["extrapolation"] = {
        "metadata_min": round(dry["wall_s"] * scale / 60, 2),
        "resize_h_for_danmul": round(per_resize * DANMUL_IMAGES / 3600, 2),
        "link_min_for_danmul": round(per_link * DANMUL_IMAGES / 60, 2),
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
