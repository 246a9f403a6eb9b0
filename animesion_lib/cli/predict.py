"""Predict the character (and tags) of images with a trained checkpoint.

    animesion predict --checkpoint runs/vit IMAGE_OR_FOLDER ... [--top-k 5] [--output preds.json]
    animesion predict --checkpoint runs/vilt faces/ --tags "long_hair,smile" --annotate annotated/

Prints the top-k characters with probabilities (and predicted tags for tagging models); writes
JSON or CSV (by --output's extension) and, with --annotate, copies of the images with the
prediction written on them. An unreadable image stops with an error naming the file, or with
--on-error skip is reported and left out.
"""

from __future__ import annotations

import argparse

HELP = "top-k characters (and tags) of images, from a checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files or folders of images")
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory, or a run directory (newest)")
    parser.add_argument("--top-k", type=int, default=5, help="characters to list per image")
    parser.add_argument("--tags", default=None, help="comma-separated tags fed to multimodal models as text")
    parser.add_argument("--tag-threshold", type=float, default=None,
                        help="tag probability to report a tag (default: the tuned validation threshold, else 0.5)")
    parser.add_argument("--output", default=None, help="write predictions to this .json or .csv file")
    parser.add_argument("--annotate", default=None, metavar="DIR", help="save annotated copies of the images here")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                        help="an unreadable image: stop with an error, or skip it and report it")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")


def write_predictions(predictions: list[dict], path: str) -> None:
    """JSON (the full structure) or CSV (one row per image: class_i, prob_i, then the tags)."""
    import csv
    import json
    from pathlib import Path

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        k = max((len(p["top_k"]) for p in predictions), default=0)
        columns = ["image"] + [c for i in range(1, k + 1) for c in (f"class_{i}", f"prob_{i}")] + ["tags"]
        with open(out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for p in predictions:
                row = [p["image"]] + [v for t in p["top_k"] for v in (t["class_name"], f"{t['probability']:.6f}")]
                row += [""] * (len(columns) - 1 - len(row))
                writer.writerow(row + [" ".join(t["tag"] for t in p.get("tags", []))])
    else:
        out.write_text(json.dumps(predictions, indent=2) + "\n")


def annotated_name(image: str, taken: set[str]) -> str:
    """``<stem>.png``; two inputs with the same stem (from different folders) never overwrite
    each other: the later one gets a short hash of its full path."""
    import hashlib
    from pathlib import Path

    name = Path(image).stem + ".png"
    if name in taken:
        name = f"{Path(image).stem}-{hashlib.sha1(str(image).encode()).hexdigest()[:8]}.png"
    taken.add(name)
    return name


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from animesion_lib.annotate import annotate_image
    from animesion_lib.prediction import predict_images

    tags = [t.strip() for t in args.tags.split(",") if t.strip()] if args.tags else None
    predictions, skipped = predict_images(args.checkpoint, args.images, top_k=args.top_k, tags=tags,
                                          tag_threshold=args.tag_threshold, on_error=args.on_error,
                                          device=args.device, batch_size=args.batch_size)
    taken: set[str] = set()
    for p in predictions:
        ranked = ", ".join(f"{t['class_name']} {t['probability']:.3f}" for t in p["top_k"])
        print(f"{p['image']}: {ranked}")
        if p.get("tags"):
            print("    tags: " + " ".join(f"{t['tag']}({t['probability']:.2f})" for t in p["tags"]))
        if args.annotate:
            lines = [f"{t['class_name']} {t['probability']:.2f}" for t in p["top_k"][:3]]
            if p.get("tags"):
                lines.append(" ".join(t["tag"] for t in p["tags"][:4]))
            annotate_image(p["image"], Path(args.annotate) / annotated_name(p["image"], taken), lines)
    for s in skipped:
        print(f"skipped {s['image']}: {s['error']}", file=sys.stderr)
    if args.output:
        write_predictions(predictions, args.output)
        print(f"wrote {len(predictions)} predictions to {args.output}")
    return 0
