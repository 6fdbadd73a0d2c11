"""Chapters 7 and 8's implement-it checks: the reference passes, realistic wrong versions fail and are named."""

from __future__ import annotations

import asyncio
import time

import pytest
import torch
import torch.nn.functional as F

from minikit import check
from minikit.distillation import distillation_loss
from minikit.implement_it import _distill_step_reference, _take_batch_reference
from minikit.server import Batcher


def _kl(student, teacher, temperature, reduction="batchmean"):  # KL(teacher_T ‖ student_T)
    return F.kl_div(F.log_softmax(student / temperature, dim=-1), F.log_softmax(teacher / temperature, dim=-1),
                    log_target=True, reduction=reduction)


# --- 07: the KD loss -------------------------------------------------------------------------------------------


def kd_missing_t2(s, t, y, alpha, temperature):
    return alpha * F.cross_entropy(s, y) + (1 - alpha) * _kl(s, t, temperature)


def kd_wrong_direction(s, t, y, alpha, temperature):  # KL(student ‖ teacher)
    return alpha * F.cross_entropy(s, y) + (1 - alpha) * temperature ** 2 * _kl(t, s, temperature)


def kd_softmax_not_log_softmax(s, t, y, alpha, temperature):
    soft = F.kl_div(F.softmax(s / temperature, dim=-1), F.softmax(t / temperature, dim=-1), reduction="batchmean")
    return alpha * F.cross_entropy(s, y) + (1 - alpha) * temperature ** 2 * soft


def kd_alpha_on_the_soft_term(s, t, y, alpha, temperature):
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * temperature ** 2 * _kl(s, t, temperature)


def kd_mean_over_classes_too(s, t, y, alpha, temperature):  # reduction="mean": divides by B × C, not B
    return alpha * F.cross_entropy(s, y) + (1 - alpha) * temperature ** 2 * _kl(s, t, temperature, "sum") / s.numel()


def kd_detached(s, t, y, alpha, temperature):  # right value, computed off the graph
    return torch.tensor(distillation_loss(s.detach(), t, y, alpha, temperature).item())


def kd_by_hand(s, t, y, alpha, temperature):  # another right way: the KL written out
    p_t = torch.softmax(t / temperature, dim=-1)
    kl = (p_t * (torch.log(p_t) - torch.log_softmax(s / temperature, dim=-1))).sum(dim=-1).mean()
    return alpha * F.cross_entropy(s, y) + (1 - alpha) * temperature ** 2 * kl


def test_kd_loss_passes_the_reference_and_a_hand_written_kl():
    assert check.kd_loss(distillation_loss)
    assert check.kd_loss(kd_by_hand)


@pytest.mark.parametrize("wrong, case", [
    (kd_missing_t2, "Case 1 of 5, one example"),
    (kd_wrong_direction, "Case 1 of 5, one example"),
    (kd_softmax_not_log_softmax, "Case 1 of 5, one example"),
    (kd_alpha_on_the_soft_term, "Case 2 of 5, a batch of 4 over 5 classes, α = 0.3"),
    (kd_mean_over_classes_too, "Case 1 of 5, one example over 3 classes"),
])
def test_kd_loss_fails_each_wrong_version_and_names_the_case(wrong, case):
    result = check.kd_loss(wrong)
    assert not result and result.message.startswith(case) and "expected" in result.message


def test_kd_loss_without_a_gradient_is_caught():
    result = check.kd_loss(kd_detached)
    assert not result and "Case 5 of 5" in result.message and "no gradient" in result.message


def test_kd_loss_stub_reads_not_answered_yet():
    def kd_loss(student_logits, teacher_logits, labels, alpha, temperature):
        # YOUR CODE HERE
        raise NotImplementedError

    assert not check.kd_loss(kd_loss) and check.kd_loss(kd_loss).message.startswith("Not answered yet")
    assert repr(check.kd_loss(kd_loss)).startswith("⏳")


# --- 07: the attention-map KL ----------------------------------------------------------------------------------


def _rows(mask):  # (B, 1, T): which query rows count
    return mask.to(torch.float32)[:, None, :]


def attention_kl_by_hand(s, t, mask):  # the learner's likely right answer: clamp, then the KL written out
    kl = (t * (torch.log(t.clamp_min(1e-12)) - torch.log(s.clamp_min(1e-12)))).sum(-1)  # (B, H, T)
    return (kl * _rows(mask)).sum() / (_rows(mask).sum() * s.shape[1])


def attention_kl_every_row(s, t, mask):  # padding query rows scored too
    kl = (t * (torch.log(t.clamp_min(1e-12)) - torch.log(s.clamp_min(1e-12)))).sum(-1)
    return kl.mean()


def attention_kl_wrong_direction(s, t, mask):  # KL(student ‖ teacher)
    return attention_kl_by_hand(t, s, mask)


def attention_kl_no_clamp(s, t, mask):  # log 0 at the padding keys: 0 · (−inf) is NaN
    kl = (t * (torch.log(t) - torch.log(s))).sum(-1)
    return (kl * _rows(mask)).sum() / (_rows(mask).sum() * s.shape[1])


def attention_kl_per_example(s, t, mask):  # averaged over the batch only (kl_div's "batchmean" on (B, ...))
    kl = (t * (torch.log(t.clamp_min(1e-12)) - torch.log(s.clamp_min(1e-12)))).sum(-1)
    return (kl * _rows(mask)).sum() / s.shape[0]


def test_attention_kl_passes_the_reference_and_a_hand_written_kl():
    assert check.attention_kl(check.reference(check.attention_kl))
    assert check.attention_kl(attention_kl_by_hand)


@pytest.mark.parametrize("wrong, case", [
    (attention_kl_every_row, "Case 2 of 3, a batch of 2 with 3 heads, the second padded"),
    (attention_kl_wrong_direction, "Case 1 of 3, one example, one head"),
    (attention_kl_no_clamp, "Case 2 of 3, a batch of 2 with 3 heads, the second padded"),
    (attention_kl_per_example, "Case 1 of 3, one example, one head"),
])
def test_attention_kl_fails_each_wrong_version_and_names_the_case(wrong, case):
    result = check.attention_kl(wrong)
    assert not result and result.message.startswith(case), result.message


def test_attention_kl_without_a_gradient_is_caught():
    result = check.attention_kl(lambda s, t, mask: attention_kl_by_hand(s.detach(), t, mask))
    assert not result and "Case 3 of 3" in result.message and "no gradient" in result.message
    assert "student's attention maps" in result.message


# --- 07: one distillation step ---------------------------------------------------------------------------------


def _logits(student, batch):
    return student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def step_forgot_zero_grad(student, teacher_logits, batch, optimizer, alpha, temperature):
    loss = distillation_loss(_logits(student, batch), teacher_logits, batch["labels"], alpha, temperature)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_forgot_the_step(student, teacher_logits, batch, optimizer, alpha, temperature):
    loss = distillation_loss(_logits(student, batch), teacher_logits, batch["labels"], alpha, temperature)
    loss.backward()
    optimizer.zero_grad()
    return loss.item()


def step_labels_only(student, teacher_logits, batch, optimizer, alpha, temperature):  # the teacher ignored
    loss = F.cross_entropy(_logits(student, batch), batch["labels"])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def step_without_the_attention_mask(student, teacher_logits, batch, optimizer, alpha, temperature):
    logits = student(input_ids=batch["input_ids"]).logits
    loss = distillation_loss(logits, teacher_logits, batch["labels"], alpha, temperature)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def test_distill_step_passes_the_reference():
    result = check.distill_step(_distill_step_reference)
    assert result and "All 3 hidden cases pass" in result.message


@pytest.mark.parametrize("wrong, case, needle", [
    (step_forgot_zero_grad, "Case 1 of 3", "zero_grad"),
    (step_forgot_the_step, "Case 1 of 3", "parameters after your step"),
    (step_labels_only, "Case 1 of 3", "the loss you returned"),
    (step_without_the_attention_mask, "Case 2 of 3, SGD with momentum", "the loss you returned"),
])
def test_distill_step_fails_each_wrong_version_and_names_the_case(wrong, case, needle):
    result = check.distill_step(wrong)
    assert not result and result.message.startswith(case) and needle in result.message


def test_distill_step_leaves_the_learners_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check.distill_step(_distill_step_reference)
    assert torch.equal(torch.rand(3), expected)


# --- 08: the batching rule -------------------------------------------------------------------------------------


def batch_strictly_before_deadline(arrivals, free, max_batch, max_wait):  # < where the server has ≤
    opens = max(free, arrivals[0])
    n = min(max_batch, sum(1 for t in arrivals if t < opens + max_wait) or 1)
    return n, max(opens, arrivals[n - 1]) if n == max_batch else opens + max_wait


def batch_never_waits(arrivals, free, max_batch, max_wait):
    opens = max(free, arrivals[0])
    return min(max_batch, sum(1 for t in arrivals if t <= opens)), opens


def batch_waits_until_full(arrivals, free, max_batch, max_wait):
    n = min(max_batch, len(arrivals))
    return n, max(free, arrivals[n - 1])


def batch_waits_from_the_first_arrival(arrivals, free, max_batch, max_wait):
    opens, deadline = max(free, arrivals[0]), max(free, arrivals[0] + max_wait)
    n = min(max_batch, sum(1 for t in arrivals if t <= deadline))
    return n, max(opens, arrivals[n - 1]) if n == max_batch else deadline


def batch_one_too_many(arrivals, free, max_batch, max_wait):
    opens = max(free, arrivals[0])
    n = min(max_batch + 1, sum(1 for t in arrivals if t <= opens + max_wait))
    return n, max(opens, arrivals[n - 1]) if n > max_batch else opens + max_wait


def test_take_batch_passes_the_reference():
    result = check.take_batch(_take_batch_reference)
    assert result and "All 7 hidden cases pass" in result.message


@pytest.mark.parametrize("wrong, case, needle", [
    (batch_strictly_before_deadline, "Case 3 of 7, a request arriving exactly at the deadline", "takes: got 1, expected 2"),
    (batch_never_waits, "Case 1 of 7", "leaves (ms): got 10, expected 15"),
    (batch_waits_until_full, "Case 1 of 7", "leaves (ms): got 10, expected 15"),
    (batch_waits_from_the_first_arrival, "Case 6 of 7, the model busy until 20 ms", "takes: got 2, expected 4"),
    (batch_one_too_many, "Case 4 of 7, six already waiting, max 4", "takes: got 5, expected 4"),
])
def test_take_batch_fails_each_wrong_version_and_names_the_case(wrong, case, needle):
    result = check.take_batch(wrong)
    assert not result and result.message.startswith(case) and needle in result.message


def test_take_batch_bad_returns_and_in_place_changes_are_named():
    assert "expected a pair (n, leaves_ms)" in check.take_batch(lambda a, f, m, w: 3).message

    def appends(arrivals, free, max_batch, max_wait):
        arrivals.append(arrivals[-1] + 1e6)  # a sentinel, as a simulation might
        return _take_batch_reference(arrivals[:-1], free, max_batch, max_wait)

    assert "changed its argument number 1 in place" in check.take_batch(appends).message

    def take_batch(arrivals_ms, free_ms, max_batch, max_wait_ms):
        # YOUR CODE HERE
        raise NotImplementedError

    assert check.take_batch(take_batch).message.startswith("Not answered yet")


@pytest.mark.parametrize("arrivals_ms, max_batch, max_wait_ms", [
    ((0, 60, 120, 400), 8, 200),  # the deadline closes the batch: the first three
    ((0, 60, 120, 180), 2, 1_000),  # max_batch closes it: the first two, long before the deadline
    ((0, 0, 0, 300), 16, 0),  # max_wait_ms = 0: only what already waits
])
def test_the_reference_follows_the_servers_batcher(arrivals_ms, max_batch, max_wait_ms):
    """The real Batcher, fed requests at these times (ms, scaled wide enough for a loaded machine), takes the same
    requests as ``_take_batch_reference`` and closes the batch when it says."""
    async def run() -> tuple[int, float]:
        batcher = Batcher(lambda texts: texts, max_batch_size=max_batch, max_wait_ms=max_wait_ms)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, t in enumerate(arrivals_ms):
            item = (f"text {i}", loop.create_future())
            if t == 0:
                batcher.queue.put_nowait(item)
            else:
                loop.call_at(start + t / 1e3, batcher.queue.put_nowait, item)
        batch = await batcher._next_batch()
        batcher.close()
        return len(batch), (loop.time() - start) * 1e3

    began = time.perf_counter()
    n, left_ms = asyncio.run(run())
    want_n, want_ms = _take_batch_reference(list(arrivals_ms), 0.0, max_batch, max_wait_ms)
    assert n == want_n
    assert want_ms - 1 <= left_ms <= want_ms + 50, (left_ms, want_ms)
    assert time.perf_counter() - began < 2


@pytest.mark.parametrize("name", ["kd_loss", "distill_step", "take_batch"])
def test_the_implement_it_checks_are_the_ones_minikit_check_exports(name):
    from minikit import implement_it

    assert getattr(check, name) is getattr(implement_it, name)
