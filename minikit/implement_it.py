"""The implement-it exercises' checks, one section per chapter: the learner writes the core of a technique.

Each check takes the learner's function, builds a few hidden cases from a fixed seed (so a rerun fails
on the same case), and runs them with :func:`minikit.practice.implemented` against minikit's own
implementation: the code the course runs is the reference. ``minikit.check.<name>(your_function)``
calls them.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification

from minikit.distillation import distillation_loss
from minikit.metrics import per_class_scores
from minikit.practice import Case, CheckResult, close, describe, exercise, implemented

# --- 03 fine-tuning ------------------------------------------------------------------------------


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


def _logits(rng: np.random.Generator, rows: int, classes: int, scale: float = 2.0) -> torch.Tensor:
    return torch.tensor(rng.normal(0.0, scale, size=(rows, classes)), dtype=torch.float32)


@exercise
def kd_loss(function: Callable) -> CheckResult:
    """``kd_loss(student_logits, teacher_logits, labels, alpha, temperature)``: minikit's ``distillation_loss``."""
    rng = np.random.default_rng(7)
    live = _logits(rng, 4, 5).requires_grad_(True)  # the loss must carry gradients back to the student
    cases = [
        Case("one example over 3 classes, α = 0.5, T = 2", (_logits(rng, 1, 3), _logits(rng, 1, 3, 4.0),
                                                            torch.tensor([0]), 0.5, 2.0)),
        Case("a batch of 4 over 5 classes, α = 0.3, T = 2", (_logits(rng, 4, 5), _logits(rng, 4, 5, 4.0),
                                                             torch.tensor([0, 3, 1, 4]), 0.3, 2.0)),
        Case("the teacher only (α = 0), T = 4, a batch of 3", (_logits(rng, 3, 5), _logits(rng, 3, 5, 4.0),
                                                               torch.tensor([2, 2, 0]), 0.0, 4.0)),
        Case("the labels only (α = 1), a batch of 2", (_logits(rng, 2, 4), _logits(rng, 2, 4), torch.tensor([1, 3]),
                                                       1.0, 2.0)),
        Case("student logits that require grad (α = 0.5, T = 3)", (live, _logits(rng, 4, 5, 4.0),
                                                                   torch.tensor([4, 0, 0, 2]), 0.5, 3.0)),
    ]

    def outcome(args: tuple, loss: Any) -> Any:  # the value, and the gradient it sends to the student's logits
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            return loss
        if not args[0].requires_grad:
            return loss.item()
        return loss.item(), torch.autograd.grad(loss, args[0])[0] if loss.requires_grad else None

    def compare(got: Any, want: Any) -> str | None:
        value = close(atol=1e-5, rtol=1e-4)(*(x[0] if isinstance(x, tuple) else x for x in (got, want)))
        if value or not isinstance(want, tuple):
            return value
        if not isinstance(got, tuple) or got[1] is None:
            return ("the value is right, but it carries no gradient back to the student's logits: compute it with "
                    "torch operations on the tensors you are given (no .item(), .numpy() or .detach())")
        problem = close(atol=1e-5, rtol=1e-4)(got[1], want[1])
        return problem and f"the value is right, but its gradient with respect to the student's logits is not: " \
            f"{problem}"

    return implemented(function, cases, distillation_loss, compare, outcome=outcome,
                       call="kd_loss(student_logits, teacher_logits, labels, alpha, temperature)",
                       success="α weights the cross-entropy on the labels; the soft term is KL(teacher ‖ student) "
                       "between the softened distributions, averaged over the batch and scaled by T².")


def _tiny_student(seed: int) -> torch.nn.Module:
    """A one-layer BERT classifier (3 labels, vocabulary 30), dropout off so a step is deterministic.

    Its weights are drawn wider than BERT's (initializer_range 0.5), so a step that forgets the attention
    mask changes the logits by more than the tolerance.
    """
    config = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, num_labels=3,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.5)
    with torch.random.fork_rng():  # the learner's own random state is left as it was
        torch.manual_seed(seed)
        return BertForSequenceClassification(config)


def _distill_step_reference(student, teacher_logits, batch, optimizer, alpha: float, temperature: float) -> float:
    logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = distillation_loss(logits, teacher_logits, batch["labels"], alpha, temperature)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


@exercise
def distill_step(function: Callable) -> CheckResult:
    """``distill_step(student, teacher_logits, batch, optimizer, alpha, temperature) -> float``: one training step."""
    rng = np.random.default_rng(8)
    cases = []
    for name, seed, rows, opt, alpha, temperature in (
            ("SGD, α = 0.5, T = 2, a batch of 4", 0, 4, dict(lr=0.5), 0.5, 2.0),
            ("SGD with momentum, the teacher only (α = 0), T = 4, a batch of 3 with padding", 1, 3,
             dict(lr=0.3, momentum=0.9), 0.0, 4.0),
            ("SGD, the labels only (α = 1), a batch of 2", 2, 2, dict(lr=1.0), 1.0, 2.0)):
        student = _tiny_student(seed)
        mask = torch.ones(rows, 6, dtype=torch.long)
        if "padding" in name:
            mask[0, 4:] = 0  # the first text is two tokens shorter
        batch = {"input_ids": torch.tensor(rng.integers(1, 30, size=(rows, 6))), "attention_mask": mask,
                 "labels": torch.tensor(rng.integers(0, 3, size=rows))}
        optimizer = torch.optim.SGD(student.parameters(), **opt)
        cases.append(Case(name, (student, _logits(rng, rows, 3, 3.0), batch, optimizer, alpha, temperature),
                          may_change=(0, 3)))

    def outcome(args: tuple, loss: Any) -> tuple:  # what the step returned, where it left the student, and its grads
        params = [p for p in args[0].parameters()]
        left = sum(float(p.grad.abs().sum()) for p in params if p.grad is not None)
        return loss, torch.cat([p.detach().flatten() for p in params]), left

    def compare(got: tuple, want: tuple) -> str | None:
        if (problem := close(atol=1e-5, rtol=1e-4)(got[0], want[0])):
            return f"the loss you returned: {problem}"
        if got[2] > 0:
            return ("the parameters still hold gradients after your step: end with optimizer.zero_grad(), or the "
                    "next step adds its gradients to these")
        if (problem := close(atol=1e-5, rtol=1e-4)(got[1], want[1])):
            return f"the student's parameters after your step: {problem} (did the optimizer step, once?)"
        return None

    return implemented(function, cases, _distill_step_reference, compare, outcome=outcome,
                       call="distill_step(student, teacher_logits, batch, optimizer, alpha, temperature)",
                       success="Forward, the KD loss against the teacher's logits, backward, step, zero_grad: "
                       "that is all a distillation step adds to fine-tuning.")


# --- 08 deployment -------------------------------------------------------------------------------


def _take_batch_reference(arrivals_ms: Sequence[float], free_ms: float, max_batch: int,
                          max_wait_ms: float) -> tuple[int, float]:
    """The rule of ``minikit.server.Batcher._next_batch``, as a pure function of arrival times and a clock.

    The server's rule runs on asyncio's queue and clock, so it cannot be called with made-up times;
    this follows it step by step. The batch opens when the model is free and a request waits
    (``await queue.get()``), and its deadline is that moment plus max_wait_ms. Requests already
    queued join at once; later ones join while the deadline has not passed: one arriving exactly at
    the deadline joins too, since the server looks at the queue before it looks at the clock. It
    leaves when it holds max_batch requests, else at the deadline.
    """
    opens = max(free_ms, arrivals_ms[0])
    deadline = opens + max_wait_ms
    n = min(max_batch, sum(1 for t in arrivals_ms if t <= deadline))
    return n, (max(opens, arrivals_ms[n - 1]) if n == max_batch else deadline)


@exercise
def take_batch(function: Callable) -> CheckResult:
    """``take_batch(arrivals_ms, free_ms, max_batch, max_wait_ms) -> (n, leaves_ms)``: the server's next batch."""
    cases = [
        Case("one request and nothing after it (it waits max_wait_ms, then goes alone)", ([10.0], 0.0, 4, 5.0)),
        Case("requests at 0, 2, 4 and 30 ms, the model free at 0, max 8, wait 5", ([0.0, 2.0, 4.0, 30.0], 0.0, 8, 5.0)),
        Case("a request arriving exactly at the deadline (0 + 5 ms)", ([0.0, 5.0, 9.0], 0.0, 8, 5.0)),
        Case("six already waiting, max 4: full at once", ([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 10.0, 4, 5.0)),
        Case("the batch fills before the deadline (max 3, wait 50)", ([0.0, 4.0, 8.0, 12.0], 0.0, 3, 50.0)),
        Case("the model busy until 20 ms: the wait starts then, not at the first arrival",
             ([0.0, 3.0, 21.0, 24.0, 40.0], 20.0, 16, 5.0)),
        Case("max_wait_ms = 0: only what already waits", ([0.0, 1.0, 6.0], 2.0, 16, 0.0)),
    ]

    def compare(got: Any, want: tuple) -> str | None:
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return f"expected a pair (n, leaves_ms), got {describe(got)}"
        if (problem := close(atol=1e-9)(got[0], want[0])):
            return f"how many requests the batch takes: {problem}"
        if (problem := close(atol=1e-6)(got[1], want[1])):
            return f"when the batch leaves (ms): {problem}"
        return None

    return implemented(function, cases, _take_batch_reference, compare,
                       call="take_batch(arrivals_ms, free_ms, max_batch, max_wait_ms)",
                       success="Take up to max_batch, or wait at most max_wait_ms from the moment the model is free: "
                       "the rule of minikit.server's Batcher.")


# --- 10 adaptive inference -----------------------------------------------------------------------

__all__ = [name for name, value in list(globals().items()) if getattr(value, "implement_it", False)]
