"""Describe a dataset folder: classes, split sizes, images per class, tags per image, fingerprint.

The layout (dafre_faces, dafre_full, moeimouto) is detected from the folders unless --layout
names it. Only label files are read, so this is quick even on the full DAF:re.
"""

from __future__ import annotations

import argparse

HELP = "describe a dataset folder (classes, splits, tags, fingerprint)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from animesion_lib.data.layout import LAYOUTS

    parser.add_argument("root", help="dataset folder")
    parser.add_argument("--layout", choices=list(LAYOUTS), default=None, help="on-disk layout (default: detect)")


def _min_median_max(values: list[int]) -> str:
    import statistics

    if not values:
        return "-"
    return f"{min(values)} / {statistics.median(values):g} / {max(values)}"


def run(args: argparse.Namespace) -> int:
    from collections import Counter

    from animesion_lib.data.fingerprint import data_fingerprint
    from animesion_lib.data.layout import (
        available_splits,
        class_file,
        detect_layout,
        get_layout,
        read_classes,
        read_split,
    )

    layout = args.layout or detect_layout(args.root)
    lay = get_layout(layout)
    classes = read_classes(class_file(args.root, layout))
    print(f"dataset     {args.root}")
    print(f"layout      {layout}  (images in {lay.image_dir}/)")
    shown = ", ".join(classes[:10]) + (f", ... ({len(classes) - 10} more)" if len(classes) > 10 else "")
    print(f"classes     {len(classes)}: {shown}")

    splits = available_splits(args.root, layout)
    print("\nsplit    images  classes  images per class (min / median / max)")
    for split in splits:
        samples = read_split(args.root, layout, split, classes=classes)
        per_class = Counter(s.class_id for s in samples)
        print(f"{split:<8} {len(samples):>6}  {len(per_class):>7}  {_min_median_max(list(per_class.values()))}")

    tag_splits = available_splits(args.root, layout, with_tags=True)
    if tag_splits:
        print("\nsplit    tagged  distinct tags  tags per image (min / median / max)")
        for split in tag_splits:
            samples = read_split(args.root, layout, split, with_tags=True, classes=classes)
            counts = [len(s.tags or ()) for s in samples]
            distinct = len({t for s in samples for t in s.tags or ()})
            print(f"{split:<8} {len(samples):>6}  {distinct:>13}  {_min_median_max(counts)}")
    else:
        print("\ntags        none ({split}_tags.csv absent)")

    print(f"\nfingerprint {data_fingerprint(args.root, layout)}")
    return 0
