"""Metrics that have no other home in the tests: near-twin accuracy."""

import numpy as np


def test_near_twin_metrics_score_the_twins_and_their_confusion():
    from animesion_lib.metrics import near_twin_metrics

    twins = {0: 1, 1: 0}  # classes 0 and 1 are sisters; class 2 has none
    labels = [0, 0, 1, 1, 2]
    predicted = [0, 1, 1, 2, 2]  # one right per sister, one swapped for the sister, one elsewhere
    scores = np.eye(3)[predicted]
    assert near_twin_metrics(scores, labels, twins) == {"twin_top1": 0.5, "twin_confusion": 0.25}
    assert near_twin_metrics(scores, [2, 2], twins) == {}
