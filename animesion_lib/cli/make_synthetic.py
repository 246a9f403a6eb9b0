"""Generate the embedded synthetic dataset ("synthetic Danbooru") in the DAF:re layout.

Writes faces/, fullMin256/, labels/{train,val,test}.csv, labels/{split}_tags.csv,
labels/classid_classname.csv, characters.json and the difficulty card
(difficulty_card.json / .md). The same seed gives byte-identical files.

Profiles: smoke (12 characters, 400 images, 32 px: a few seconds) and cpu (the default:
100 characters, 6000 images, 64 px faces, under a minute on one core). Explicit options
override the profile.

Example: animesion make-synthetic --out data/synthetic-cpu --profile cpu
"""

from __future__ import annotations

import argparse

HELP = "generate the synthetic anime-character dataset (DAF:re layout, with tags)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (must be empty or absent)")
    parser.add_argument("--profile", choices=("smoke", "cpu"), default="cpu",
                        help="size preset; the options below override it")
    parser.add_argument("--classes", type=int, default=None, help="number of characters")
    parser.add_argument("--images", type=int, default=None, help="number of images in total")
    parser.add_argument("--size", type=int, default=None, help="face crop size in pixels")
    parser.add_argument("--full-size", type=int, default=None,
                        help="full-figure view size in pixels (default: 2 x --size)")
    parser.add_argument("--min-per-class", type=int, default=None,
                        help="minimum images per character (DAF:re uses 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes that draw images (the output does not depend on it)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace what a previous run wrote in --out")
    parser.add_argument("--if-stale", action="store_true",
                        help="do nothing if --out already holds this exact dataset (same options, same "
                             "generator code); otherwise regenerate it, replacing what an older run wrote")
    parser.add_argument("--no-card", action="store_true",
                        help="skip the difficulty card (its baselines take a few seconds)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from animesion_lib.data.synthetic import SyntheticConfig, is_current, make_synthetic

    config = SyntheticConfig.from_profile(
        args.profile, classes=args.classes, images=args.images, size=args.size,
        full_size=args.full_size, min_per_class=args.min_per_class, seed=args.seed,
        workers=args.workers, overwrite=args.overwrite or args.if_stale, card=not args.no_card,
        progress=not args.quiet,
    )
    if args.if_stale and is_current(args.out, config):
        print(f"{args.out} is up to date (same options, same generator)")
        return 0
    summary = make_synthetic(args.out, config)
    splits = ", ".join(f"{k} {v}" for k, v in summary.split_sizes.items())
    print(f"wrote {summary.num_images} images of {summary.num_classes} characters to "
          f"{summary.root} ({splits}) in {summary.seconds:.1f} s")
    if summary.card:
        acc = summary.card["accuracy"]
        parts = [f"chance {acc['chance']:.3f}", f"majority {acc['majority']['test']:.3f}"]
        for key, label in (("tags_lr", "tags-only LR"), ("image_lr", "thumbnail LR"),
                           ("tags_image_lr", "tags+thumbnail LR")):
            if key in acc:
                parts.append(f"{label} {acc[key]['test']:.3f}")
        print("test accuracy: " + ", ".join(parts) + f"  (see {summary.root}/difficulty_card.md)")
    return 0
