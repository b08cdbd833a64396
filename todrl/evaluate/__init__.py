"""Evaluation: the standard and legacy MultiWOZ evaluators, In-Car, state tracking, and their CLI.

Every evaluator reads predictions in the standard MultiWOZ evaluator's file
format (`predictions`), so outputs of todrl and of published systems are
scored the same way.
"""

from todrl.evaluate.dst import DstEvaluator, DstResult, MultiWozDstEvaluator, MultiWozDstResult
from todrl.evaluate.incar import InCarEvaluator, InCarResult
from todrl.evaluate.incar_published import PublishedInCarEvaluator
from todrl.evaluate.legacy import LegacyEvaluator, LegacyResult
from todrl.evaluate.multiwoz import StandardEvaluator, StandardResult
from todrl.evaluate.predictions import PredictedTurn, PredictionError, Predictions, load_predictions
from todrl.evaluate.sgd import SgdEvaluator, SgdResult

__all__ = [
    "DstEvaluator", "DstResult", "InCarEvaluator", "InCarResult", "LegacyEvaluator", "LegacyResult",
    "MultiWozDstEvaluator", "MultiWozDstResult",
    "PublishedInCarEvaluator",
    "SgdEvaluator", "SgdResult",
    "PredictedTurn", "PredictionError", "Predictions", "StandardEvaluator", "StandardResult", "load_predictions",
]  # fmt: skip
