"""Metrics that have no other home in the tests: near-twin accuracy."""

import numpy as np
import pytest


def test_near_twin_metrics_score_the_twins_and_their_confusion():
    from animesion_lib.metrics import near_twin_metrics

    twins = {0: 1, 1: 0}  # classes 0 and 1 are sisters; class 2 has none
    labels = [0, 0, 1, 1, 2]
    predicted = [0, 1, 1, 2, 2]  # one right per sister, one swapped for the sister, one elsewhere
    scores = np.eye(3)[predicted]
    assert near_twin_metrics(scores, labels, twins) == {"twin_top1": 0.5, "twin_confusion": 0.25}
    assert near_twin_metrics(scores, [2, 2], twins) == {}


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_average_precision_equals_scikit_learn_with_ties(seed):
    from sklearn.metrics import average_precision_score

    from animesion_lib.metrics import average_precision_per_column, tag_average_precision

    rng = np.random.default_rng(seed)
    n, tags = 200, 12
    targets = (rng.random((n, tags)) < rng.uniform(0.02, 0.5, tags)).astype(np.int64)
    targets[0] = 1  # every column has a positive
    scores = np.round(rng.random((n, tags)), 1 + seed % 2)  # coarse: many ties
    scores[:, 0] = 0.3  # one column entirely tied: AP is the prevalence
    expected = [average_precision_score(targets[:, t], scores[:, t]) for t in range(tags)]
    np.testing.assert_allclose(average_precision_per_column(scores, targets), expected, atol=1e-12)
    assert average_precision_per_column(scores[:, :1], targets[:, :1])[0] == pytest.approx(targets[:, 0].mean())
    found = tag_average_precision(scores, targets)
    assert found["map_macro"] == pytest.approx(np.mean(expected))
    assert found["map_micro"] == pytest.approx(average_precision_score(targets.ravel(), scores.ravel()))
