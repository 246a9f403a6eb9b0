"""Time of our top-k accuracy, tag F1 and tag AP against scikit-learn's, at the sizes the paper runs see.

``animesion_lib.metrics`` counts top-k accuracy and F1 itself (a randomized test checks them
against scikit-learn) because scikit-learn's are much slower at these sizes, and the tuned tag
threshold calls F1 once per threshold of a 19-point grid. Shapes (default): DAF:re validation,
46,000 images x 3,263 classes; a Danbooru-sized tag evaluation, 20,000 images x 1,000 tags.

    python benchmarks/metrics.py
    python benchmarks/metrics.py --images 10000 --classes 1000 --tag-images 5000 --tags 500

Prints a table; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn import metrics as skm

from animesion_lib.metrics import average_precision_per_column, f1_at_threshold, topk_accuracy


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=46_000)
    parser.add_argument("--classes", type=int, default=3_263)
    parser.add_argument("--tag-images", type=int, default=20_000)
    parser.add_argument("--tags", type=int, default=1_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((args.images, args.classes)).astype(np.float32)
    labels = rng.integers(0, args.classes, args.images)
    tag_scores = rng.random((args.tag_images, args.tags))
    targets = (rng.random((args.tag_images, args.tags)) < 0.02).astype(np.int64)
    predicted = (tag_scores >= 0.5).astype(np.int64)
    rows = [
        (f"top-5 accuracy, {args.images} x {args.classes}",
         _seconds(lambda: topk_accuracy(scores, labels, ks=(5,))),
         _seconds(lambda: skm.top_k_accuracy_score(labels, scores, k=5, labels=np.arange(args.classes)))),
        (f"micro F1 at 0.5, {args.tag_images} x {args.tags}",
         _seconds(lambda: f1_at_threshold(tag_scores, targets, 0.5)),
         _seconds(lambda: skm.f1_score(targets, predicted, average="micro"))),
        (f"macro tag AP, {args.tag_images} x {args.tags}",
         _seconds(lambda: average_precision_per_column(tag_scores, targets)),
         _seconds(lambda: skm.average_precision_score(targets, tag_scores, average="macro"))),
    ]
    print(f"| metric | animesion_lib.metrics (s) | scikit-learn (s) |\n| --- | ---: | ---: |")
    for name, ours, theirs in rows:
        print(f"| {name} | {ours:.2f} | {theirs:.2f} |")


if __name__ == "__main__":
    main()
