"""Chapter 4 — interpretability: which tokens pushed a logit up or down (gradient × input)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from minikit.models import forward_arguments

# ================================================================================================
# Interpretability: which tokens pushed the logit up or down
# ================================================================================================


def _target_id(model: torch.nn.Module, target: int | str | None, logits: torch.Tensor) -> int:
    if target is None:
        return int(logits.argmax())
    if isinstance(target, str):
        label2id = dict(getattr(model.config, "label2id", {}) or {})
        if target not in label2id:
            raise ValueError(f"target={target!r} is not one of this model's labels {list(label2id)}. "
                             "Fix: pass a label name from that list or a class id.")
        return int(label2id[target])
    if not 0 <= int(target) < len(logits):
        raise ValueError(f"target={target} but the model has {len(logits)} classes. Fix: pick 0…{len(logits) - 1}.")
    return int(target)


def _logit_gradient(model: torch.nn.Module, embeds: torch.Tensor, extra: dict[str, torch.Tensor],
                    target: int) -> torch.Tensor:
    """d logit[target] / d embeddings for a batch of embedded copies of one text, shape (S, T, E)."""
    embeds = embeds.detach().requires_grad_(True)
    batch = {k: v.expand(len(embeds), -1) for k, v in extra.items()}
    with torch.enable_grad():
        logit = model(inputs_embeds=embeds, **batch).logits[:, target].sum()  # copies are independent
        return torch.autograd.grad(logit, embeds)[0]  # autograd.grad leaves the weights' .grad alone


def _word_ids(enc, tokens: list[str]) -> list[int | None]:
    """Word index of each token (None for special tokens); WordPiece's '##' marks where no fast tokenizer."""
    try:
        return list(enc.word_ids(0))
    except (ValueError, AttributeError):
        word, ids = -1, []
        for t in tokens:
            word += not t.startswith("##")
            ids.append(word)
        return ids


def _merge_subwords(table: pd.DataFrame, word_ids: list[int | None], tokenizer) -> pd.DataFrame:
    """One row per word: its pieces' attributions summed; each special token stays a row of its own."""
    starts = [i == 0 or w is None or w != word_ids[i - 1] for i, w in enumerate(word_ids)]
    group = np.cumsum(starts)
    return table.groupby(group, sort=False).agg(
        token=("token", lambda pieces: tokenizer.convert_tokens_to_string(list(pieces))),
        position=("position", "first"), attribution=("attribution", "sum"), special=("special", "first"),
    ).reset_index(drop=True)


def token_attributions(model: torch.nn.Module, tokenizer, text: str, target: int | str | None = None,
                       method: str = "grad_x_input", steps: int = 20, max_length: int = 128,
                       merge_subwords: bool = False) -> pd.DataFrame:
    """How much each token pushed one class's logit: token, position, attribution, normalised, special.

    Taken on the word embeddings (``model.get_input_embeddings()``), summed over their width;
    ``target`` defaults to the predicted class. "grad_x_input" is one backward pass.
    "integrated_gradients" averages gradients along a straight line from a baseline (every
    non-special token replaced by [PAD]) to the text, with the midpoint rule over ``steps``; its
    attributions add up to logit(text) − logit(baseline), and ``df.attrs["delta"]`` says how far
    the sum is from that. Attributions explain a logit, not a probability. ``normalised`` is
    attribution / max |attribution|.
    """
    if method not in {"grad_x_input", "integrated_gradients"}:
        raise ValueError(f"method={method!r}: expected 'grad_x_input' or 'integrated_gradients'.")
    if steps < 1:
        raise ValueError(f"steps={steps}: integrated gradients needs at least 1 step (20–50 is usual).")
    enc = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
    device = next(model.parameters()).device
    ids = enc["input_ids"].to(device)  # (1, T)
    extra = {k: v.to(device) for k, v in enc.items() if k != "input_ids" and k in forward_arguments(model)}
    special = torch.tensor(tokenizer.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True),
                           dtype=torch.bool, device=device)
    was_training = model.training
    model.eval()  # dropout would make attributions random
    try:
        embed = model.get_input_embeddings()
        with torch.no_grad():
            x = embed(ids)  # (1, T, E)
            logits = model(inputs_embeds=x, **extra).logits[0]
        target = _target_id(model, target, logits)
        info = {"target": target, "label": model.config.id2label.get(target, str(target)), "method": method,
                "logit": float(logits[target])}
        if method == "grad_x_input":
            scores = (_logit_gradient(model, x, extra, target) * x).sum(-1)[0]  # (T,)
        else:
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            with torch.no_grad():
                base = embed(torch.where(special, ids[0], pad)[None])  # (1, T, E)
                base_logit = float(model(inputs_embeds=base, **extra).logits[0, target])
            alphas = (torch.arange(steps, device=device) + 0.5) / steps  # midpoints of equal slices of the path
            grads = torch.cat([_logit_gradient(model, base + a[:, None, None] * (x - base), extra, target)
                               for a in alphas.split(16)])  # (steps, T, E), 16 copies per forward pass
            scores = ((x - base) * grads.mean(0, keepdim=True)).sum(-1)[0]
            info.update(baseline_logit=base_logit, delta=float(scores.sum()) - (info["logit"] - base_logit))
    finally:
        model.train(was_training)
    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    table = pd.DataFrame({"token": tokens, "position": range(len(tokens)),
                          "attribution": scores.detach().cpu().double().numpy(), "special": special.cpu().numpy()})
    if merge_subwords:
        table = _merge_subwords(table, _word_ids(enc, tokens), tokenizer)
    peak = table["attribution"].abs().max()
    table.insert(3, "normalised", table["attribution"] / peak if peak > 0 else 0.0)
    table.attrs.update(info)
    return table
