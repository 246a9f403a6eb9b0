"""Build a Dan:mul-style or DAF:re-style dataset (DAF:re layout) from Danbooru metadata.

Reads JSON-lines metadata in either published shape -- the Danbooru2019-2021 dumps ("tags" a
list of {name, category}; images at 512px/<id mod 1000, 4 digits>/<id>.jpg) or the current API
(tag_string_general/character/copyright/artist/meta, rating, md5, file_ext; images expected at
<md5[:2]>/<md5>.<file_ext> unless --image-path says otherwise) -- and writes:

  OUT/fullMin256/<character>/<id>.jpg   (or OUT/faces/ with --image-folder faces)
  OUT/labels/{train,val,test}.csv, {train,val,test}_tags.csv, classid_classname.csv
  OUT/statistics.json, statistics.md    (Dan:mul Table 2 row, exclusions by reason, tag filters)
  OUT/problems.csv                      (every bad line, duplicate, missing/unreadable image)

Filters, in order (each excluded post is counted under the first that applies): malformed or
invalid lines (--on-error), duplicate post ids (first copy kept), no image path, rating
(--ratings), posts without exactly one character tag, missing/unreadable images, characters with
fewer than --min-images posts. Then tags: categories (--tag-categories), rare tags
(--min-tag-count training images) and the importance filter: a tag's importance is
max over characters of tf*idf (tf: share of the character's training images with the tag; idf:
ln(#characters / #characters with the tag)); tags with importance <= --min-tag-importance are
dropped, then each image keeps its --max-tags-per-image most important tags.

The presets' values are listed at the end of this help; an option given overrides them.

Examples:
  animesion build-dataset --metadata danbooru2021/metadata --images danbooru2021 --out dan_mul
  animesion build-dataset --preset dafre --metadata posts.jsonl --images mirror --out dafre \\
      --image-path "{md5_0_2}/{md5_2_4}/{md5}.{ext}" --image-mode link
  animesion build-dataset --metadata posts.jsonl --out /tmp/preview --dry-run
"""

from __future__ import annotations

import argparse

HELP = "build a Dan:mul / DAF:re style dataset from Danbooru metadata"


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.7,0.1,0.2, got {text!r}") from None
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three fractions train,val,test, got {text!r}")
    return parts  # type: ignore[return-value]


def _csv_list(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "off") else int(text)


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "off") else float(text)


def presets_help() -> str:
    """The presets' values, from the code that applies them (so the help cannot drift)."""
    from animesion_lib.data.danbooru import PRESETS

    def show(value) -> str:
        if value is None:
            return "off"
        if isinstance(value, tuple):
            return ",".join(map(str, value))
        return str(value)

    lines = ["presets:"]
    for name, values in PRESETS.items():
        options = ", ".join(f"--{k.replace('_', '-')} {show(v)}" for k, v in values.items())
        lines.append(f"  {name}: {options}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from animesion_lib.data.danbooru_metadata import IMAGE_PATH_FIELDS

    parser.epilog = presets_help()

    io = parser.add_argument_group("input and output")
    io.add_argument("--metadata", nargs="+", required=True, metavar="PATH",
                    help="JSON-lines metadata files, or folders of *.json/*.jsonl/*.ndjson files")
    io.add_argument("--images", metavar="IMAGES_ROOT",
                    help="folder the image paths are relative to (not needed with --dry-run)")
    io.add_argument("--out", required=True, metavar="DIR", help="dataset folder to create")
    io.add_argument("--overwrite", action="store_true",
                    help="replace DIR if it exists (swapped in only when the new build is complete)")
    io.add_argument("--shape", choices=["auto", "dump", "api"], default="auto",
                    help="metadata shape; auto decides per file from its first post")
    io.add_argument("--image-path", dest="image_template", metavar="TEMPLATE", default=None,
                    help="image path under IMAGES_ROOT, with fields "
                         + ", ".join("{" + f + "}" for f in IMAGE_PATH_FIELDS)
                         + " ({bucket} = id mod 1000 as 4 digits). Default: dump "
                         "'512px/{bucket}/{id}.jpg', api '{md5_0_2}/{md5}.{ext}'")
    io.add_argument("--on-error", choices=["stop", "skip"], default="stop",
                    help="on a malformed JSON line or a post without an integer id: stop with its "
                         "line number, or report it in problems.csv and go on")

    _add_recipe_arguments(parser.add_argument_group("recipe (defaults come from --preset)"))
    _add_image_arguments(parser.add_argument_group("images"))
    engine = parser.add_argument_group("engine")
    engine.add_argument("--memory-limit", default="2GB",
                        help="DuckDB memory limit; larger work spills to a temporary folder in DIR")
    engine.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_recipe_arguments(recipe: argparse._ArgumentGroup) -> None:
    recipe.add_argument("--preset", choices=["danmul", "dafre"], default="danmul",
                        help="starting values for the options below (see the description)")
    recipe.add_argument("--ratings", type=_csv_list, default=None, metavar="LETTERS",
                        help="keep only these ratings, e.g. g,s (letters g s q e); default: all")
    recipe.add_argument("--min-images", type=int, default=argparse.SUPPRESS, metavar="N",
                        help="drop characters with fewer posts (danmul 10, dafre 20)")
    recipe.add_argument("--split", type=_fractions, default=argparse.SUPPRESS, metavar="TRAIN,VAL,TEST",
                        help="split fractions, stratified per character (presets: 0.7,0.1,0.2)")
    recipe.add_argument("--seed", type=int, default=0, help="seed of the deterministic split")
    recipe.add_argument("--tag-categories", type=_csv_list, default=argparse.SUPPRESS, metavar="CATS",
                        help="tag categories kept as features, from general,copyright,artist,meta "
                             "(danmul general,copyright; dafre general). Character tags are the label")
    recipe.add_argument("--min-tag-count", type=int, default=argparse.SUPPRESS, metavar="N",
                        help="drop tags on fewer training images (danmul 10; dafre 1 = off)")
    recipe.add_argument("--min-tag-importance", type=_optional_float, default=argparse.SUPPRESS,
                        metavar="X", help="drop tags whose importance is <= X; 'off' disables "
                                          "(danmul 0 = drop tags every character has; dafre off)")
    recipe.add_argument("--max-tags-per-image", type=_optional_int, default=argparse.SUPPRESS,
                        metavar="K", help="keep the K most important tags per image; 'off' "
                                          "disables (danmul 24; dafre off)")


def _add_image_arguments(images: argparse._ArgumentGroup) -> None:
    images.add_argument("--image-mode", choices=["resize", "link", "copy"], default="resize",
                        help="resize (shorter side to --size, JPEG), hard-link (copy when linking "
                             "fails) or copy the source files")
    images.add_argument("--link", dest="image_mode", action="store_const", const="link",
                        default=argparse.SUPPRESS,
                        help="same as --image-mode link")
    images.add_argument("--size", type=int, default=256, help="shorter side after resizing")
    images.add_argument("--quality", type=int, default=90, help="JPEG quality when resizing")
    images.add_argument("--image-folder", choices=["fullMin256", "faces"], default=argparse.SUPPRESS,
                        help="image folder name: fullMin256 (DAFull, full images; the default) or "
                             "faces (when the sources are already face crops)")
    images.add_argument("--dry-run", action="store_true",
                        help="run every metadata stage and write labels and statistics, but open, "
                             "check and write no image (no image folder is created)")
    images.add_argument("--workers", type=int, default=None,
                        help="image processes (default: number of CPU cores)")


def config_from_args(args: argparse.Namespace):
    """The BuildConfig an argument namespace asks for: the preset, then every given option."""
    from animesion_lib.data.danbooru import preset_config

    # Options left out are absent from the namespace (SUPPRESS), so the preset's value stays.
    preset_options = ("min_images", "split", "tag_categories", "min_tag_count", "image_folder",
                      "min_tag_importance", "max_tags_per_image")
    overrides = {name: getattr(args, name) for name in preset_options if hasattr(args, name)}
    if args.workers is not None:
        overrides["workers"] = args.workers
    return preset_config(
        args.preset,
        shape=args.shape,
        image_template=args.image_template,
        on_error=args.on_error,
        ratings=args.ratings,
        seed=args.seed,
        image_mode=args.image_mode,
        size=args.size,
        quality=args.quality,
        dry_run=args.dry_run,
        memory_limit=args.memory_limit,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        **overrides,
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from animesion_lib.data.danbooru import build_dataset, statistics_markdown

    try:
        config = config_from_args(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stats = build_dataset(args.metadata, args.images, args.out, config)
    print(statistics_markdown(stats))
    problems = sum(stats["excluded"][r] for r in (
        "malformed_json", "invalid_post", "duplicate_id", "no_image_path", "image_missing",
        "image_unreadable"))
    if problems:
        print(f"{problems:,} bad input(s) reported in {args.out}/problems.csv", file=sys.stderr)
    print(f"wrote {args.out} in {stats['timings_s']['total']:.1f} s")
    return 0
