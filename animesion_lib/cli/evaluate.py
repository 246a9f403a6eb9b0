"""Evaluate a checkpoint on a split: top-1/top-5, mean class accuracy, tag mAP and F1.

    animesion evaluate --checkpoint runs/vit --split test
    animesion evaluate --checkpoint runs/vilt --split test --experiment vilt_curriculum --profile cpu

The data, layout, image size and tokenizer default to the training run's. Multimodal models are
evaluated with tags, without tags and with a fraction dropped, each metric named with its mode
(tags.top1, notags.top1, drop50.top1; an image-only model's are unprefixed: top1); the tuned tag
threshold is chosen on --threshold-split and applied unchanged to --split.
"""

from __future__ import annotations

import argparse

HELP = "evaluate a checkpoint (metrics, confusion matrix, results record)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory, or a run directory (newest)")
    parser.add_argument("--data", default=None, help="dataset folder (default: the training run's)")
    parser.add_argument("--layout", default=None, help="dataset layout (default: the training run's)")
    parser.add_argument("--split", default="test", help="split to evaluate")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch")
    parser.add_argument("--text-modes", default=None,
                        help="multimodal: comma-separated of tags,none,drop (default: all three)")
    parser.add_argument("--drop-fraction", type=float, default=0.5, help="fraction of tags dropped in 'drop' mode")
    parser.add_argument("--tag-threshold", type=float, default=0.5, help="fixed threshold of the tag F1")
    parser.add_argument("--threshold-split", default="val",
                        help="split the tuned tag threshold is chosen on ('none': choose on --split itself)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    parser.add_argument("--precision", default="auto", help="auto | fp32 | bf16 | fp16")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--experiment", default=None, help="write results/<profile>/<experiment>.json")
    parser.add_argument("--profile", default="smoke", help="profile of the results record")
    parser.add_argument("--results-dir", default="results", help="where results records go")
    parser.add_argument("--confusion", default=None, metavar="CSV", help="write the confusion matrix here")
    parser.add_argument("--per-class", default=None, metavar="CSV", help="write per-class accuracy here")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from animesion_lib.evaluation import evaluate_checkpoint

    evaluation = evaluate_checkpoint(
        args.checkpoint, data=args.data, split=args.split, layout=args.layout, batch_size=args.batch_size,
        text_modes=args.text_modes or None, drop_fraction=args.drop_fraction,
        tag_threshold=args.tag_threshold,
        threshold_split=None if args.threshold_split in ("none", "") else args.threshold_split,
        device=args.device, precision=args.precision, num_workers=args.num_workers,
        experiment=args.experiment, profile=args.profile, results_dir=args.results_dir,
    )
    width = max(len(k) for k in evaluation.metrics)
    for name, value in evaluation.metrics.items():
        print(f"{name:<{width}}  {value:.4f}")
    if args.confusion:
        pd.DataFrame(evaluation.confusion, index=evaluation.classes, columns=evaluation.classes).to_csv(args.confusion)
    if args.per_class:
        support = evaluation.confusion.sum(axis=1)
        pd.DataFrame({"class_name": evaluation.classes, "images": support,
                      "accuracy": np.round(evaluation.per_class_accuracy, 6)}).to_csv(args.per_class, index_label="class_id")
    if args.experiment:
        print(f"results record: {args.results_dir}/{args.profile}/{args.experiment}.json")
    return 0
