"""How many of a class's images go to train, val and test: one rule for every dataset we write.

The synthetic generator and the Danbooru builder both split each class on its own (stratified)
with :func:`split_counts`, so a class of ``n`` images is cut the same way wherever it comes from.
"""

from __future__ import annotations

from collections.abc import Sequence


def split_counts(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """``(train, val, test)`` image counts for a class of ``n`` images.

    Val and test get ``round(n * fraction)`` (Python's rounding, half to even: the synthetic
    data the committed results cite was cut this way), at least one each when their fraction
    is positive and ``n >= 3``; a zero fraction gets none. Train gets the rest and always keeps
    at least one image (tiny classes give up test first, then val).
    """
    _, f_val, f_test = fractions

    def share(fraction: float) -> int:
        if fraction <= 0:
            return 0
        k = round(n * fraction)
        return max(k, 1) if n >= 3 else k

    n_val, n_test = share(f_val), share(f_test)
    while n - n_val - n_test < 1 and n_val + n_test > 0:
        if n_test >= n_val and n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    return n - n_val - n_test, n_val, n_test
