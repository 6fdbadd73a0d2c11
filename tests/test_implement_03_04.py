"""Chapters 3 and 4's implement-it checks: the reference passes, realistic wrong versions fail on a named case."""

from __future__ import annotations

import numpy as np
import torch

from minikit import check

# --- 03: one training step ----------------------------------------------------------------------


def step(model, batch, optimizer):
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def zero_grad_first(model, batch, optimizer):  # the other common order: clear, then forward and backward
    optimizer.zero_grad()
    out = model(**batch)
    out.loss.backward()
    optimizer.step()
    return out.loss  # a one-number tensor is taken as the number


def forgot_zero_grad(model, batch, optimizer):
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    return loss.item()


def forgot_step(model, batch, optimizer):
    loss = model(**batch).loss
    loss.backward()
    optimizer.zero_grad()
    return loss.item()


def step_before_backward(model, batch, optimizer):
    loss = model(**batch).loss
    optimizer.step()
    loss.backward()
    optimizer.zero_grad()
    return loss.item()


def loss_after_the_update(model, batch, optimizer):
    step(model, batch, optimizer)
    return model(**batch).loss.item()


def test_train_step_passes_the_reference_and_the_zero_grad_first_order():
    result = check.train_step(step)
    assert result and result.message.startswith("All 3 hidden cases pass")
    assert check.train_step(zero_grad_first)


def test_forgetting_zero_grad_fails_the_two_step_case_with_its_hint():
    result = check.train_step(forgot_zero_grad)
    assert not result and result.message.startswith("Case 3 of 3, two steps in a row")
    assert "values differ" in result.message and "call `optimizer.zero_grad()` after `optimizer.step()`" in result.message


def test_a_step_that_never_updates_fails_the_first_case():
    for wrong in (forgot_step, step_before_backward):
        result = check.train_step(wrong)
        assert not result and result.message.startswith("Case 1 of 3, a 2-layer BERT, 3 classes"), wrong.__name__
        assert "left the parameters as they were" in result.message and "`optimizer.step()`" in result.message


def test_returning_the_loss_after_the_update_is_caught():
    result = check.train_step(loss_after_the_update)
    assert not result and result.message.startswith("Case 1 of 3") and "the loss you returned: got" in result.message


def test_the_stub_an_error_and_a_wrong_signature_read_as_the_learner_needs():
    def stub(model, batch, optimizer):
        # YOUR CODE HERE
        raise NotImplementedError

    assert check.train_step(stub).message.startswith("Not answered yet")
    assert "Not answered yet" in check.train_step(None).message

    def no_labels(model, batch, optimizer):
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        loss = model(**inputs).loss
        loss.backward()
        return loss.item()

    raised = check.train_step(no_labels).message
    assert raised.startswith("Case 1 of 3") and "raised AttributeError" in raised
    assert "line 4 of your function: `loss.backward()`" in raised and "minikit" not in raised
    assert "your function takes (model, batch)" in check.train_step(lambda model, batch: 0.0).message


def test_the_check_leaves_the_learners_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check.train_step(step)
    assert torch.equal(torch.rand(3), expected)


# --- 04: precision, recall and F1 (more cases in test_practice.py) --------------------------------


def test_precision_recall_f1_fails_the_mean_over_all_classes_and_integer_division():
    def solution(cm):
        cm = np.asarray(cm, dtype=float)
        tp = np.diag(cm)
        with np.errstate(divide="ignore", invalid="ignore"):
            p, r = np.nan_to_num(tp / cm.sum(0)), np.nan_to_num(tp / cm.sum(1))
            return p, r, np.nan_to_num(2 * p * r / (p + r))

    def arithmetic_mean(cm):
        p, r, _ = solution(cm)
        return p, r, (p + r) / 2

    def integer_division(cm):
        cm = np.asarray(cm)
        tp = np.diag(cm)
        p, r = tp // np.maximum(cm.sum(0), 1), tp // np.maximum(cm.sum(1), 1)
        return p, r, np.zeros(len(cm))

    assert check.precision_recall_f1(solution)
    mean = check.precision_recall_f1(arithmetic_mean)
    assert not mean and mean.message.startswith("Case 1 of 3") and "item 2 of the tuple" in mean.message
    floor = check.precision_recall_f1(integer_division)
    assert not floor and floor.message.startswith("Case 1 of 3") and "item 0 of the tuple" in floor.message
