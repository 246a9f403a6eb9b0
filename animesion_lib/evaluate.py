"""Old import path of ``evaluate_model`` and ``open_split``, kept only until ``train.py`` imports
them from their homes; delete this module then.

    from animesion_lib.evaluation import evaluate_model, evaluate_checkpoint
    from animesion_lib.data.splits import open_split
"""

from animesion_lib.data.splits import open_split
from animesion_lib.evaluation import evaluate_checkpoint, evaluate_model

__all__ = ["evaluate_checkpoint", "evaluate_model", "open_split"]
