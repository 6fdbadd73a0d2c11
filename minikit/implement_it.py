"""The implement-it exercises' checks, one section per chapter: the learner writes the core of a technique.

Each check takes the learner's function, builds a few hidden cases from a fixed seed (so a rerun fails
on the same case), and runs them with :func:`minikit.practice.implemented` against minikit's own
implementation: the code the course runs is the reference. ``minikit.check.<name>(your_function)``
calls them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from transformers import BertConfig

from minikit.metrics import per_class_scores
from minikit.models import build_model
from minikit.practice import Case, CheckResult, close, exercise, implemented

# --- 03 fine-tuning ------------------------------------------------------------------------------


def _step_reference(model, batch, optimizer) -> float:
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


class _TwoSteps:  # a step run on two batches in a row; __code__ keeps error messages on the learner's lines
    def __init__(self, step: Callable):
        self.step, self.__code__ = step, getattr(step, "__code__", None)

    def __call__(self, model, batches, optimizer):
        return tuple(self.step(model, batch, optimizer) for batch in batches)


@exercise
def train_step(function: Callable) -> CheckResult:
    """``train_step(model, batch, optimizer) -> float``: forward with labels, backward, step, zero_grad; the loss."""
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=16, num_labels=3, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)  # no dropout: a step gives the same result twice
    with torch.random.fork_rng(devices=[]):  # seeded cases; the learner's random state is left as it was
        model = build_model(config, seed=3)
        ids = torch.randint(5, 40, (7, 6))
    mask = torch.ones_like(ids)
    mask[2, 3:] = 0  # a padded sequence
    first = {"input_ids": ids[:3], "attention_mask": mask[:3], "labels": torch.tensor([2, 0, 1])}
    second = {"input_ids": ids[3:], "attention_mask": mask[3:], "labels": torch.tensor([1, 1, 0, 2])}
    sgd = torch.optim.SGD(model.parameters(), lr=0.5)
    order = "Check the order: forward, `loss.backward()`, `optimizer.step()`, `optimizer.zero_grad()`"
    leftover = ("The first step's gradients were still there, and the second's were added to them: call "
                "`optimizer.zero_grad()` after `optimizer.step()`")
    trains = {"may_change": (0, 2)}  # a step changes the model and the optimizer it is given
    cases = [(Case("a 2-layer BERT, 3 classes, a padded batch of 3 sequences, SGD", (model, first, sgd), **trains),
              order),
             (Case("the same model and batch with AdamW", (model, first, torch.optim.AdamW(model.parameters())),
                   **trains), order),
             (Case("two steps in a row (SGD): the second must use the second batch's gradients only",
                   (model, (first, second), sgd), **trains), leftover)]

    def flat(net) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    def compare(got, want) -> str | None:  # (the loss or losses returned, the parameters after)
        if problem := close(atol=1e-6, rtol=1e-5)(got[0], want[0]):
            return f"the loss you returned: {problem}. Return `loss.item()` of the forward pass, before the update"
        if torch.equal(got[1], flat(model)):
            return ("your step left the parameters as they were: `loss.backward()` computes the gradients, then "
                    "`optimizer.step()` applies them")
        problem = close(atol=1e-6, rtol=1e-5)(got[1], want[1])
        return f"the parameters after your step differ from a correct step's: {problem}. {hint}" if problem else None

    for number, (case, hint) in enumerate(cases, 1):
        two = isinstance(case.args[1], tuple)
        result = implemented(_TwoSteps(function) if two else function, [case], _TwoSteps(_step_reference) if two
                             else _step_reference, compare, call="train_step(model, batch, optimizer)", success="",
                             outcome=lambda args, returned: (returned, flat(args[0])))
        if not result:
            return CheckResult(False, result.message.replace("Case 1 of 1,", f"Case {number} of {len(cases)},"))
    return CheckResult(True, f"All {len(cases)} hidden cases pass. The forward pass with the labels gives the loss, "
                       "backward computes every gradient, step applies them, and zero_grad clears them so the next "
                       "batch starts from zero: that is the step a training loop repeats.")


# --- 04 metrics ----------------------------------------------------------------------------------


def _prf_reference(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = per_class_scores(cm)
    return tuple(scores[c].to_numpy(dtype=float) for c in ("precision", "recall", "f1"))  # type: ignore[return-value]


@exercise
def precision_recall_f1(function: Callable) -> CheckResult:
    """``precision_recall_f1(cm) -> (precision, recall, f1)``: per-class arrays from a confusion matrix (rows = truth)."""
    rng = np.random.default_rng(4)
    never_predicted = rng.integers(1, 9, size=(3, 3))
    never_predicted[:, 2] = 0  # class 2 is never predicted: its precision is 0/0, taken as 0
    cases = [
        Case("a 2×2 matrix [[5, 1], [2, 4]]", (np.array([[5, 1], [2, 4]]),)),
        Case("a 4×4 matrix whose rows (the truth) and columns (the predictions) differ in total",
             (rng.integers(0, 20, size=(4, 4)),)),
        Case("a 3×3 matrix where class 2 is never predicted (0/0 counts as 0)", (never_predicted,)),
    ]
    return implemented(function, cases, _prf_reference, close(atol=1e-6), call="precision_recall_f1(cm)",
                       success="Precision divides by the column (predicted), recall by the row (true), "
                       "and F1 is their harmonic mean.")


# --- 05 pruning ----------------------------------------------------------------------------------


# --- 06 quantization -----------------------------------------------------------------------------


# --- 07 distillation -----------------------------------------------------------------------------


# --- 08 deployment -------------------------------------------------------------------------------


# --- 10 adaptive inference -----------------------------------------------------------------------

__all__ = [name for name, value in list(globals().items()) if getattr(value, "implement_it", False)]
