"""Auto-checks for the notebooks' exercises: ``minikit.check.<name>(answer)`` says pass or gives a hint.

Every check recomputes the right answer from the real model or data; nothing is typed in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from minikit.benchmark import pick_variant
from minikit.data import check_leakage
from minikit.deployment import deployment_scenarios
from minikit.early_exit import ExitRule, exit_layers
from minikit.implement_it import *  # noqa: F401,F403  (the implement-it checks: minikit.check.<name>(your_function))
from minikit.implement_it import reference  # noqa: F401  (the student edition's stand-in for a solution)
from minikit.lab import pareto_front
from minikit.metrics import per_class_scores, precision_recall_at_threshold
from minikit.models import build_model, encoder_layers, head_parameters
from minikit.profiling import count_parameters, depth_at_batch_1
from minikit.practice import CheckResult, answered, use  # noqa: F401  (use: minikit.check.use, after an implement-it exercise)
from minikit.pruning import encoder_linears, magnitude_threshold
from minikit.quantization_checks import *  # noqa: F401,F403  (chapter 6's checks)
from minikit.server import create_app
from minikit.tasks import TaskSampler


# --- 01 model selection -------------------------------------------------------------------------


@answered
def encoder_layer_params(answer: int | None) -> CheckResult:
    """Parameters in one MiniLM-L6 encoder layer, from hidden=384 and FFN=1536."""
    import torch
    model = build_model("minilm-l6")
    layer = next(m for m in model.modules() if type(m).__name__.endswith("Layer"))
    truth = count_parameters(layer)
    linears = [m for m in layer.modules() if isinstance(m, torch.nn.Linear)]
    weights = sum(m.weight.numel() for m in linears)
    biases = sum(m.bias.numel() for m in linears if m.bias is not None)
    norms = truth - weights - biases
    if int(answer) == truth:
        return CheckResult(True, f"One layer holds {truth:,} parameters: 4·H² + 2·H·F weights plus biases and LayerNorms.")
    slips = {weights: "You counted the weight matrices only: add every bias and the two LayerNorms.",
             weights + biases: "The projections and their biases are right: add the two LayerNorms.",
             weights + norms: "The matrices and LayerNorms are right: add one bias per output of every projection."}
    if int(answer) in slips:
        return CheckResult(False, slips[int(answer)])
    hint = "Count the four H×H attention projections (Q, K, V, output), the two FFN matrices H×F and F×H, "
    hint += "every bias, and two LayerNorms (a weight and a bias of size H each)."
    return CheckResult(False, f"Too {'many' if int(answer) > truth else 'few'}. {hint}")


@answered
def faster_at_batch_1(answer: str | None, profiles: pd.DataFrame, a: str = "mobilebert", b: str = "minilm-l6") -> CheckResult:
    """Which of two models has the lower measured batch-1 latency (they have similar parameter counts)."""
    rows = profiles.set_index("name")
    if a not in rows.index or b not in rows.index:
        return CheckResult(False, f"Measure both {a!r} and {b!r} first (they must be rows of the table you pass).")
    truth = a if rows.loc[a, "latency_p50_ms"] < rows.loc[b, "latency_p50_ms"] else b
    if str(answer).strip().lower() != truth:
        return CheckResult(False, "Read the latency_p50_ms of both rows in the table you measured, not the parameter "
                           "counts (they are similar on purpose): the lower median latency is the faster model.")
    why = (f"{a}: {rows.loc[a, 'params_m']:.1f} M params, {rows.loc[a, 'latency_p50_ms']:.1f} ms; "
           f"{b}: {rows.loc[b, 'params_m']:.1f} M params, {rows.loc[b, 'latency_p50_ms']:.1f} ms.")
    return CheckResult(True, why + " " + depth_at_batch_1(profiles, a, b))


# --- 02 preprocessing ---------------------------------------------------------------------------


@answered
def most_truncated_topic(answer: tuple | None, lengths, labels, label_names, max_length: int = 512) -> CheckResult:
    """(topic, share): the topic whose articles are most often longer than ``max_length`` tokens, and that share."""
    lengths, labels = np.asarray(lengths), np.asarray(labels)
    shares = {name: float(np.mean(lengths[labels == c] > max_length)) for c, name in enumerate(label_names)}
    truth = max(shares, key=shares.get)
    if not isinstance(answer, (tuple, list)) or len(answer) != 2 or str(answer[0]).strip().lower() not in shares:
        return CheckResult(False, f"Answer with a tuple (topic, share), the topic one of {list(shares)}.")
    topic, share = str(answer[0]).strip().lower(), float(answer[1])
    if topic != truth:
        return CheckResult(False, f"Not {topic}: another topic has a larger share of articles over {max_length} "
                           "tokens. Compute the share for every topic: the mean of lengths[labels == c] > max_length.")
    if abs(share - shares[truth]) < 1e-3:
        ranked = ", ".join(f"{k} {v:.0%}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1]))
        return CheckResult(True, f"{truth}: {share:.1%} of its articles lose text even at {max_length} tokens "
                           f"({ranked}). " + ("A fixed max_length cuts some topics much more than others." if
                           shares[truth] > 2 * min(shares.values()) + 0.01 else "Here the topics lose text at "
                           "similar rates."))
    if abs(share - 100 * shares[truth]) < 0.1:
        return CheckResult(False, "Right topic. Give the share as a fraction between 0 and 1, not a percentage.")
    if abs(share - float(np.mean(lengths > max_length))) < 1e-3:
        return CheckResult(False, "Right topic, but that share is over all topics: keep only this topic's articles.")
    return CheckResult(False, f"Right topic; your share is too {'high' if share > shares[truth] else 'low'}. Divide "
                       f"the topic's articles longer than {max_length} tokens (strictly) by the topic's articles.")


@answered
def near_split_leaks(answer: int | None, report, ds, splits) -> CheckResult:
    """Test articles of ``splits`` (made from ``ds``) with an exact or near copy in train, from ``report.near_pairs``."""
    split_of = {i: name for name, part in splits.items() for i in part["id"]}
    ids = ds["id"]
    pairs = [(split_of[ids[a]], split_of[ids[b]], ids[a], ids[b]) for a, b, _ in report.near_pairs]
    leaked = [x if sx == "test" else y for sx, sy, x, y in pairs if {sx, sy} == {"train", "test"}]
    truth, exact = len(set(leaked)), len({b for _, b in check_leakage(splits).leaks.get(("train", "test"), [])})
    if int(answer) == truth:
        more = (f"{truth - exact} more than the exact check finds: the same story re-filed with a word or a line "
                "break changed" if truth > exact else "none beyond what the exact check finds, on this split")
        return CheckResult(True, f"{truth} test articles have an exact or near copy in train, {more}.")
    if int(answer) == exact:
        return CheckResult(False, "That counts exact copies only, as section 7's check does: add the test articles "
                           "whose near-duplicate (a pair in report.near_pairs) sits in train.")
    if int(answer) == truth - exact:
        return CheckResult(False, "That counts only the ones the exact check missed: count every test article with "
                           "an exact or a near copy in train.")
    return CheckResult(False, f"Too {'many' if int(answer) > truth else 'few'}. For each pair (i, j, similarity) in "
                       "report.near_pairs, look up the split of ds[i] and ds[j] by their id; keep the pairs with one "
                       "article in train and one in test, and count the distinct test articles.")


# --- 03 fine-tuning -----------------------------------------------------------------------------


@answered
def probe_parameters(answer: int | None, num_labels: int = 5, model: str = "minilm-l6") -> CheckResult:
    """Trainable parameters of a linear probe on ``model``: every parameter outside ``model.base_model``."""
    import torch

    with torch.device("meta"):  # shapes only: no memory, no time
        net = build_model(model, num_labels=num_labels)
    head = head_parameters(net)
    truth, hidden = sum(p.numel() for p in head), net.config.hidden_size
    encoder = sum(p.numel() for p in net.parameters()) - truth
    if int(answer) == truth:
        return CheckResult(True, f"{truth:,} parameters: {len(head) // 2} linear layer(s) outside the encoder, "
                           f"against {encoder / 1e6:.1f} M in the frozen encoder.")
    if int(answer) == hidden * num_labels + num_labels:
        return CheckResult(False, f"That is one {hidden}→{num_labels} layer with its biases, but {model}'s classifier "
                           "has more outside its encoder: print the model and look beside the encoder.")
    return CheckResult(False, f"Too {'many' if int(answer) > truth else 'few'}. Count every weight and bias outside "
                       "model.base_model (print the model: the layers beside the encoder), one bias per output.")


@answered
def schedule_steps(answer: tuple[int, int] | None, n_train: int, config) -> CheckResult:
    """(optimizer steps in the run, warm-up steps) for ``config`` on ``n_train`` examples."""
    import math

    steps = math.ceil(n_train / config.batch_size) * config.epochs
    truth = (steps, int(config.warmup_ratio * steps))
    if tuple(int(a) for a in answer) == truth:
        last = " (the last batch is smaller)" if n_train % config.batch_size else ""
        return CheckResult(True, f"{truth[0]} steps{last}, warm-up ends at step {truth[1]}.")
    if int(answer[0]) != steps:
        return CheckResult(False, "Steps: the examples divided by the batch size, rounded *up*, times the epochs.")
    return CheckResult(False, "Warm-up steps: warmup_ratio × total steps, rounded down.")


# --- 03b multi-task ------------------------------------------------------------------------------


@answered
def sampling_probabilities(answer: dict | None, sizes: dict, strategy: str = "temperature",
                           temperature: float = 2.0) -> CheckResult:
    """The share of steps each task gets from ``tasks.TaskSampler(sizes, strategy, temperature)``, within 0.005."""
    truth = TaskSampler(sizes, strategy, temperature).probabilities
    if not isinstance(answer, dict) or set(answer) != set(truth):
        return CheckResult(False, f"Give a dict with one share per task, keys {sorted(truth)}.")
    off = {k: float(answer[k]) - p for k, p in truth.items()}
    if all(abs(d) <= 0.005 for d in off.values()):
        small = min(sizes, key=sizes.get)
        fair, equal, p = sizes[small] / sum(sizes.values()), 1 / len(sizes), truth[small]
        lesson = (f"{small}, the smallest task, gets {p:.3f}: more than its proportional share ({fair:.3f}) and less "
                  "than an equal one: T trades one against the other." if fair + 1e-6 < p < equal - 1e-6 else
                  f"{small}, the smallest task, gets its proportional share ({fair:.3f}): nothing is traded here."
                  if abs(p - fair) <= 1e-6 else f"{small}, the smallest task, gets {p:.3f} (proportional: {fair:.3f}, "
                  f"equal: {equal:.3f}).")
        return CheckResult(True, ", ".join(f"{k} {q:.3f}" for k, q in truth.items()) + ". " + lesson)
    worst = max(off, key=lambda k: abs(off[k]))
    return CheckResult(False, f"{worst}: your share is too {'high' if off[worst] > 0 else 'low'}. Temperature "
                              "sampling draws task i with probability n_i^(1/T) / Σ_j n_j^(1/T); T = 1 is "
                              "proportional, a large T nearly uniform.")


@answered
def points_at_equal_compute(answer: float | None, table: pd.DataFrame, run: str,
                            tolerance: float = 0.05) -> CheckResult:
    """Multi-task ``run``'s main-task accuracy minus the single-task run at the same share of labels that read the
    nearest number of tokens in training, in points (``table`` as ``multitask.RUN_COLUMNS``)."""
    rows = table[table["run"] == run]
    if rows.empty:
        raise ValueError(f"run={run!r} is not in the table.")
    r = rows.iloc[0]
    singles = table[(table["kind"] == "single-task") & np.isclose(table["share"], r["share"])]
    if singles.empty:
        raise ValueError(f"The table has no single-task run at {r['share']:.0%} of the labels to compare with.")
    single = singles.loc[(singles["tokens"] - r["tokens"]).abs().idxmin()]
    truth = 100 * (r["accuracy"] - single["accuracy"])
    if abs(float(answer) - truth) <= tolerance:
        verdict = ("sharing helped even at equal compute" if truth > 1 else
                   "at equal compute the second task cost accuracy" if truth < -1 else
                   "at equal compute the two are within a point: one run on this test set cannot tell a gain "
                   "from the second task apart from noise")
        return CheckResult(True, f"{truth:+.2f} points against {single['run']!r}: {verdict}.")
    return CheckResult(False, f"{float(answer):+.2f} is not it. Compare with the single-task run at the same share "
                              f"whose tokens read in training are nearest to {int(r['tokens']):,}, and give 100 × "
                              "the accuracy difference (multi minus single).")


# --- 04 metrics ---------------------------------------------------------------------------------


@answered
def merged_macro_f1(answer: float | None, cm, merge: tuple[int, int]) -> CheckResult:
    """Macro-F1 after merging classes ``merge`` into one: their rows and their columns are added (rows = truth)."""
    cm, (a, b) = np.asarray(cm), merge
    keep = [c for c in range(len(cm)) if c != b]
    rows = cm.copy()
    rows[a] += rows[b]  # the truth merged
    merged = rows.copy()
    merged[:, a] += merged[:, b]  # and the predictions
    truth = float(per_class_scores(merged[np.ix_(keep, keep)])["f1"].mean())
    before = float(per_class_scores(cm)["f1"].mean())
    got = float(answer)
    if abs(got - truth) < 1e-4:
        return CheckResult(True, f"{truth:.4f}, {'up' if truth > before else 'down'} from {before:.4f} with every "
                           "class: the confusions between the two merged classes are no longer mistakes, and the "
                           "mean is now over one class fewer.")
    if abs(got - before) < 1e-4:
        return CheckResult(False, "That is the macro-F1 before merging: add the two rows and the two columns first.")
    if abs(got - float(per_class_scores(rows[np.ix_(keep, keep)])["f1"].mean())) < 1e-4:
        return CheckResult(False, "You merged the rows (the truth) only: merge the columns (the predictions) too.")
    if abs(got - float(np.trace(merged[np.ix_(keep, keep)]) / cm.sum())) < 1e-4:
        return CheckResult(False, "That is the accuracy of the merged matrix: macro-F1 averages the classes' F1.")
    return CheckResult(False, f"Too {'high' if got > truth else 'low'}. Add row b to row a and column b to column a, "
                       "drop row and column b, then average the per-class F1 of the smaller matrix.")


@answered
def threshold_for_precision(answer: float | None, probs: np.ndarray, y_true: np.ndarray, cls: int,
                            target: float = 0.99) -> CheckResult:
    """The lowest threshold (step 0.01) where one class's precision reaches ``target``."""
    grid = np.round(np.arange(0, 1.01, 0.01), 2)
    hits = [t for t in grid if precision_recall_at_threshold(probs, y_true, cls, t).precision >= target]
    if not hits:
        return CheckResult(False, f"No threshold reaches precision {target} for this class.")
    truth = float(hits[0])
    scores = precision_recall_at_threshold(probs, y_true, cls, truth)
    if abs(float(answer) - truth) < 1e-9:
        return CheckResult(True, f"t = {truth:.2f}: precision {scores.precision:.3f}, recall {scores.recall:.3f}.")
    if float(answer) > truth:
        return CheckResult(False, "Precision is already high enough at a lower threshold: scan from 0 upwards.")
    return CheckResult(False, "At that threshold precision is still below the target.")


# --- 05 pruning ---------------------------------------------------------------------------------


@answered
def pruning_threshold(answer: float | None, weights, sparsity: float) -> CheckResult:
    """The |w| at or below which magnitude pruning zeroes a tensor's weights to reach ``sparsity``."""
    import torch


    w = torch.as_tensor(weights, dtype=torch.float32)
    truth, k = magnitude_threshold([w], sparsity), round(sparsity * w.numel())
    ranked = w.abs().flatten().sort().values
    if abs(float(answer) - truth) < 1e-6:
        return CheckResult(True, f"Every |w| ≤ {truth:.4g} goes: the {k} smallest of {w.numel()} weights, "
                           f"{sparsity:.0%} of them.")
    if k < w.numel() and abs(float(answer) - float(ranked[k])) < 1e-6:
        return CheckResult(False, f"Off by one: that is the {k + 1}-th smallest |w|. With k = {k} weights to remove, "
                           "the threshold is the k-th smallest (counting from 1), the largest one that goes.")
    if abs(float(answer) - float(w.flatten().sort().values[k - 1])) < 1e-6:
        return CheckResult(False, "Rank the absolute values: a weight of −0.9 matters as much as +0.9.")
    return CheckResult(False, "Take |w|, sort it, and read the k-th smallest value, k = round(sparsity × number "
                       "of weights).")


@answered
def csr_bytes(answer: int | None, weights) -> CheckResult:
    """Bytes of a 2-D float32 tensor stored as CSR with int32 indices (values, column indices, row pointers)."""
    import warnings

    import torch

    w = torch.as_tensor(weights, dtype=torch.float32)
    if w.ndim != 2:
        return CheckResult(False, f"CSR stores a matrix; this tensor has shape {tuple(w.shape)}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        csr = w.to_sparse_csr()
    nnz, rows = csr.values().numel(), w.shape[0]
    # torch keeps int64 indices; minikit (pruning.sparse_size_mb) stores them as int32, 4 bytes each.
    truth = nnz * csr.values().element_size() + csr.col_indices().numel() * 4 + csr.crow_indices().numel() * 4
    dense = w.numel() * w.element_size()
    if int(answer) == truth:
        verdict = "smaller" if truth < dense else "not smaller"
        return CheckResult(True, f"{nnz} values × 4 B + {nnz} column indices × 4 B + {rows + 1} row pointers × 4 B "
                           f"= {truth} B, against {dense} B dense: {verdict}. Each kept weight costs 8 bytes, so "
                           "CSR pays off only above 50 % sparsity.")
    if int(answer) == nnz * 8:
        return CheckResult(False, "You have the values and column indices; add the row pointers (rows + 1 of them).")
    if int(answer) == nnz * 8 + rows * 4:
        return CheckResult(False, "Almost: there are rows + 1 row pointers (the last one marks the end).")
    if int(answer) == nnz * 4 + (rows + 1) * 4:
        return CheckResult(False, "Each non-zero also needs its column index (4 bytes).")
    if int(answer) == nnz * 4 + nnz * 8 + (rows + 1) * 8:
        return CheckResult(False, "Here indices are stored as int32 (4 bytes), not int64.")
    return CheckResult(False, "Count the non-zeros (torch.count_nonzero): 4 bytes of value and 4 of column index "
                       "each, plus 4 bytes per row pointer (rows + 1).")


@answered
def most_pruned_layer(answer: int | None, model, sparsity: float) -> CheckResult:
    """The encoder layer that loses the largest share of its Linear weights under global magnitude pruning."""
    linears = encoder_linears(model)
    cut = magnitude_threshold([m.weight for _, _, m in linears], sparsity)
    zeros, sizes = {}, {}
    for layer, _, m in linears:
        zeros[layer] = zeros.get(layer, 0) + int((m.weight.detach().abs() <= cut).sum())
        sizes[layer] = sizes.get(layer, 0) + m.weight.numel()
    share = pd.Series({layer: zeros[layer] / sizes[layer] for layer in sizes})
    truth, least = int(share.idxmax()), int(share.idxmin())
    if int(answer) == truth:
        return CheckResult(True, f"Layer {truth} loses {share[truth]:.1%} of its weights, layer {least} only "
                           f"{share[least]:.1%}: ranked together, layers whose weights are small lose most.")
    if int(answer) == least:
        return CheckResult(False, "That layer loses the *least*. Look for the largest share of zeros.")
    return CheckResult(False, "Group pruning.sparsity_table(pruned) by layer and divide the zeros (params − nonzero) "
                       "by the params: a share per layer, not per module.")


# --- 07 distillation ---------------------------------------------------------------------------------


@answered
def student_parameters(answer: int | None, teacher, student) -> CheckResult:
    """Parameters of ``student`` (fewer layers, pruned vocabulary) worked out from the teacher's."""
    truth = count_parameters(student)
    if int(answer) == truth:
        return CheckResult(True, f"{truth:,} parameters, {truth / count_parameters(teacher):.0%} of the teacher's.")
    layer = count_parameters(encoder_layers(teacher)[0])
    dim = teacher.get_input_embeddings().embedding_dim
    rows = teacher.get_input_embeddings().num_embeddings - student.get_input_embeddings().num_embeddings
    off = int(answer) - truth
    if abs(off) in (layer, dim * rows):
        part = "one encoder layer: check how many layers the student keeps" if abs(off) == layer else \
            "the removed embedding rows: check that you took them away once"
        return CheckResult(False, f"Your count differs by exactly {part}.")
    return CheckResult(False, f"Too {'many' if off > 0 else 'few'}. Start from the teacher's count, take away the dropped encoder "
                       f"layers ({layer:,} each), the pruned feed-forward neurons in the kept layers ({2 * dim + 1} "
                       f"numbers each) and the dropped vocabulary rows ({dim} numbers each).")


@answered
def temperature_for_top(answer: float | None, logits, share: float = 0.5, tolerance: float = 0.05) -> CheckResult:
    """The temperature at which the top class's probability falls to ``share`` (within ``tolerance`` relative)."""
    import numpy as np

    z = np.asarray(logits, dtype=np.float64)

    def top(t: float) -> float:
        p = np.exp((z - z.max()) / t)
        return float((p / p.sum()).max())

    if top(1e-3) <= share or top(1e3) >= share:
        return CheckResult(False, f"The top class never crosses {share:.0%} for this article; pick another one.")
    lo, hi = 1e-3, 1e3  # the top class's share falls as T grows: bisect on log T
    for _ in range(100):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if top(mid) > share else (lo, mid)
    truth = (lo * hi) ** 0.5
    got = float(answer)
    if got > 0 and abs(got - truth) <= tolerance * truth:
        above = "the runner-ups together outweigh it" if share == 0.5 else f"it holds less than {share:.0%}"
        return CheckResult(True, f"At T ≈ {truth:.2f} the top class holds {share:.0%}; above it {above}.")
    hint = "higher" if got < truth else "lower"
    return CheckResult(False, f"At T = {got:g} the top class holds {top(got):.0%}: try a {hint} temperature.")


# --- 08 deployment -----------------------------------------------------------------------------------


@answered
def burst_ms(answer: float | None, by_batch: pd.DataFrame, texts: int = 64, batch_size: int = 16) -> CheckResult:
    """When the last of ``texts`` texts arriving at once is answered, run ``batch_size`` at a time on one thread."""
    rows = by_batch.set_index("batch_size")
    if batch_size not in rows.index or 1 not in rows.index:
        return CheckResult(False, f"The table needs batch sizes 1 and {batch_size}; it has {list(rows.index)}.")
    batches = -(-texts // batch_size)
    per_batch, one_by_one = float(rows.loc[batch_size, "p50_ms"]), texts * float(rows.loc[1, "p50_ms"])
    truth, got = batches * per_batch, float(answer)
    if abs(got - truth) <= max(0.5, 0.01 * truth):
        return CheckResult(True, f"{truth:.0f} ms in {batches} batches of {batch_size}, against {one_by_one:.0f} ms "
                           "one text at a time: the last text waits for every batch before its own.")
    if abs(got - per_batch) <= max(0.5, 0.01 * per_batch):
        return CheckResult(False, f"That is one batch. {texts} texts make several, and they run one after another.")
    if abs(got - one_by_one) <= max(0.5, 0.01 * one_by_one):
        return CheckResult(False, f"That is {texts} calls of one text each; the server runs {batch_size} per call.")
    return CheckResult(False, "Count the batches the burst makes, then add up their times (p50_ms of that batch size).")


@answered
def status_codes(answer: dict | None, predict, bodies: dict, **app_options) -> CheckResult:
    """The status the server (``create_app`` around ``predict``) answers to each JSON body of ``bodies``."""
    from fastapi.testclient import TestClient  # fastapi's test client loads only when this check runs

    if not isinstance(answer, dict) or set(answer) != set(bodies):
        return CheckResult(False, f"Give a dict with one status code per body, with the keys {list(bodies)}.")
    if any(v is None for v in answer.values()):
        return CheckResult(False, "Replace every None with a status code (200, 400, 413 or 422).")
    with TestClient(create_app(predict, **app_options)) as client:
        replies = {name: client.post("/predict", json=body) for name, body in bodies.items()}
    wrong = [name for name, reply in replies.items() if str(answer[name]).strip() != str(reply.status_code)]
    if wrong:
        return CheckResult(False, f"{len(wrong)} of {len(bodies)} not right yet: {', '.join(wrong)}. A limit is "
                           "\"at most\": the limit itself is allowed. 413 is for something too large; 422 for a wrong "
                           "type, an empty text or list, or a field the request does not have.")
    why = "; ".join(f"{name}: {r.status_code}" + (f" ({r.json()['detail']})" if r.status_code != 200 else "")
                    for name, r in replies.items())
    return CheckResult(True, why)


@answered
def hybrid_break_even(answer: float | None, measured: dict, factor: float = 2.0) -> CheckResult:
    """The round trip (ms) at which the hybrid's mean latency is ``factor`` × the edge's (same model in the cloud)."""
    d, share = measured["p50_ms"], measured["low_confidence_share"]
    if share == 0:
        return CheckResult(False, "No text goes to the cloud here, so no round trip changes the hybrid's latency.")
    truth, got = (factor - 1) * d / share - d, float(answer)
    if abs(got - truth) <= max(0.05, 0.01 * truth):
        at = deployment_scenarios(measured, network_rtt_ms=truth).set_index("scenario")["latency_ms"]
        return CheckResult(True, f"{truth:.1f} ms: there the hybrid's {at['hybrid']:.2f} ms is {factor:g} × the "
                           f"edge's {at['edge']:.2f} ms; the rarer the unsure texts, the longer the trip it affords.")
    if abs(got - (truth + d)) <= max(0.05, 0.01 * truth):
        return CheckResult(False, "Almost: after the round trip the cloud also runs the model (p50_ms) on the text.")
    return CheckResult(False, "Solve d + s·(rtt + d) = factor·d for rtt, with d = measured['p50_ms'] and "
                       "s = measured['low_confidence_share'].")


# --- 10 adaptive inference ------------------------------------------------------------------------


@answered
def mean_exit_layer(answer: float | None, layer_logits: np.ndarray, threshold: float,
                    kind: str = "max-prob") -> CheckResult:
    """Mean exit layer (1-based) under ``ExitRule(kind, threshold)`` (max-prob or entropy), from logits (N, L, C)."""
    layers = exit_layers(layer_logits, ExitRule(kind, threshold))
    truth, got = float(layers.mean()), float(answer)
    if abs(got - truth) <= 0.005:
        return CheckResult(True, f"{truth:.3f} layers on average: {np.mean(layers == 1):.0%} of the texts stop "
                           f"after layer 1, {np.mean(layers == layer_logits.shape[1]):.0%} run every layer.")
    if abs(got - (truth - 1)) <= 0.005:
        return CheckResult(False, "Count layers from 1: a text that stops after the first layer used 1 layer.")
    if kind == "entropy":  # the usual slips: log base 2 (bits, not nats), or "above" where the rule says below
        if abs(got - float(exit_layers(layer_logits, ExitRule(kind, threshold * np.log(2))).mean())) <= 0.005:
            return CheckResult(False, "That is entropy in bits (log base 2). The rule measures it in nats: np.log.")
        return CheckResult(False, "Softmax each layer's logits, entropy = −Σ p·ln p (natural log), and stop at the "
                           "first layer whose entropy is *below* the threshold (the last layer if none is).")
    return CheckResult(False, "Softmax each layer's logits, find the first layer whose top probability is above "
                       "the threshold (the last layer if none is), and average those layer numbers.")


@answered
def budget_choice(answer: str | None, results: pd.DataFrame, latency_budget_ms: float,
                  memory_budget_mb: float) -> CheckResult:
    """The variant the picker would choose for these budgets (most accurate among those that fit)."""
    pick = pick_variant(results, latency_budget_ms, memory_budget_mb)
    table = pick.table.set_index("name")
    if answer == pick.chosen:
        return CheckResult(True, f"{pick.chosen!r}: the most accurate of the {int(table['fits'].sum())} "
                           f"variant(s) within {latency_budget_ms:.2f} ms and {memory_budget_mb:g} MB.")
    if answer not in table.index:
        return CheckResult(False, f"{answer!r} is not a variant here; the names are {list(table.index)}.")
    return CheckResult(False, f"{answer!r}: {table.loc[answer, 'reason']}.")


# --- 09 compression lab --------------------------------------------------------------------------


@answered
def lab_predicted_size(answer: float | None, lab, recipe, tolerance: float = 0.01) -> CheckResult:
    """A recipe's size from the parameter table alone (params kept × bytes each), within 1 %."""
    truth = lab.predicted_size_mb(recipe)
    if abs(float(answer) - truth) <= tolerance * truth:
        return CheckResult(True, f"{recipe.name}: {truth:.2f} MB on paper, before anything is built. Size is "
                                 "arithmetic; accuracy and latency are not — those you must measure.")
    hints = ("Word embeddings shrink to vocabulary_size() rows of the original "
             f"{lab.teacher.model.get_input_embeddings().num_embeddings}; each layer's feed-forward part keeps "
             "(1 − ffn_pruned) of its parameters; only `depth` layers are kept; the rest stays; then bytes: "
             "4 per parameter in float32, 1 in int8, ½ at 4 bits, and MB = bytes / 1e6.")
    ratio = float(answer) / truth
    each = recipe.bits / 8  # bytes per parameter; another width's bytes give one of these ratios
    if any(abs(ratio - other / each) < 0.01 * other / each for other in (4.0, 1.0, 0.5) if other != each):
        return CheckResult(False, "Check the bytes per parameter: 4 in float32, 1 in int8, ½ at 4 bits.")
    if any(abs(ratio - r) < 0.001 for r in (2**20 / 1e6, 1e6 / 2**20)):
        return CheckResult(False, "Here MB = bytes / 1e6, not bytes / 2**20.")
    return CheckResult(False, f"Too {'high' if ratio > 1 else 'low'}. {hints}")


@answered
def lab_pareto(answer: list | None, results: pd.DataFrame, axis: str = "size") -> CheckResult:
    """The names of the recipes on the Pareto front of accuracy against ``axis`` ("size" or "latency")."""
    if axis not in ("size", "latency"):
        raise ValueError(f"axis={axis!r}: expected 'size' or 'latency'.")
    if isinstance(answer, str):
        answer = [answer]
    truth = set(results.loc[pareto_front(results[f"{axis}_pct"], results["points"]), "name"])
    given = set(answer)
    if given == truth:
        return CheckResult(True, f"{len(truth)} recipe(s) on the {axis} front: each is the most accurate at its "
                                 f"{axis} or below. Shipping anything else means giving away accuracy or {axis} for nothing.")
    extra, missed = sorted(given - truth), sorted(truth - given)
    parts = ([f"not on the front (another recipe is as accurate and {'smaller' if axis == 'size' else 'faster'}): "
              f"{extra}"] if extra else []) + ([f"missing: {len(missed)} recipe(s)"] if missed else [])
    return CheckResult(False, "; ".join(parts) + ". A recipe is on the front when no other one has at least its "
                              f"accuracy at no more {axis}, and is strictly better in one of the two.")
