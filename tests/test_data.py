"""Chapter 2 — loading, normalization, duplicates, splits, leakage and tokenization."""

from __future__ import annotations

from collections import Counter

import datasets
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minikit
from minikit.data import fixed_subset, kept_token_share, near_duplicate_pairs, normalize_text

BBC_SIZE = 2225


def _ds(texts, labels=None, names=None) -> datasets.Dataset:
    """A small dataset with minikit's columns (id, text, label as ClassLabel)."""
    labels = labels if labels is not None else [0] * len(texts)
    names = names or [f"c{i}" for i in range(max(labels) + 1)]
    features = datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict({"id": [f"r{i}" for i in range(len(texts))], "text": list(texts),
                                       "label": list(labels)}, features=features)


def _words(n: int, prefix: str = "w") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def test_bbc_exact_duplicates(bbc):
    report = minikit.find_duplicates(bbc, near_threshold=None)
    assert report.n_input == BBC_SIZE
    assert report.n_exact == 98
    assert report.near_pairs == []
    assert report.n_removed == 98
    texts = bbc["text"]
    for group in report.exact_groups:
        assert group == sorted(group)
        assert len({texts[i] for i in group}) == 1
    # Independently: rows whose text was already seen.
    seen, repeats = set(), 0
    for t in texts:
        repeats += t in seen
        seen.add(t)
    assert repeats == 98


def test_bbc_remove_exact_duplicates_keeps_first_in_order(bbc):
    kept, report = minikit.remove_duplicates(bbc, near_threshold=None)
    assert len(kept) + report.n_removed == len(bbc)
    assert len(kept) == report.n_kept == BBC_SIZE - 98
    assert len(set(kept["text"])) == len(kept)
    # Order and first occurrences: exactly the rows whose text has not appeared before.
    seen, expected = set(), []
    for row_id, text in zip(bbc["id"], bbc["text"]):
        if text not in seen:
            expected.append(row_id)
            seen.add(text)
    assert kept["id"] == expected


def test_prepared_duplicate_report(prepared):
    splits, report = prepared
    assert report.n_input == BBC_SIZE
    assert report.n_exact == 98
    assert report.n_removed > report.n_exact  # near-duplicates at 0.9 go too
    assert sum(len(s) for s in splits.values()) == report.n_kept
    assert all(s >= 0.9 for _, _, s in report.near_pairs)
    assert f"{report.n_exact} exact duplicates" in report.summary()


def _tiny_corpus(folder, extra: str = "") -> None:
    """Five topic folders of eight short texts each, laid out like the BBC corpus."""
    for label in minikit.loading.BBC_LABELS:
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(8):
            (folder / label / f"{i:03d}.txt").write_text(f"{label} story {i} " + " ".join(_words(12, label)) + extra)


def test_prepared_bbc_is_cached_on_disk_and_follows_the_corpus(tmp_path, monkeypatch):
    """The second preparation (a fresh session: memory cleared) reads the cache; a changed file prepares again."""
    corpus = tmp_path / "corpus"
    _tiny_corpus(corpus)
    monkeypatch.setattr(minikit.loading, "bbc_news_dir", lambda: corpus)
    monkeypatch.setattr(minikit.data, "_PREPARED", {})
    before = len(minikit.cache.entries("prepared"))
    fresh, fresh_report = minikit.prepare_dataset(cache=False)
    assert len(minikit.cache.entries("prepared")) == before  # cache=False writes nothing
    splits, report = minikit.prepare_dataset()
    assert {k: v.to_dict() for k, v in splits.items()} == {k: v.to_dict() for k, v in fresh.items()}
    assert splits["train"].features == fresh["train"].features and report == fresh_report
    assert len(minikit.cache.entries("prepared")) == before + 1

    splits["train"] = splits["train"].select([0])  # the caller's copy only
    report.removed.append(999)
    monkeypatch.setattr(minikit.data, "_PREPARED", {})  # a new session: only the disk cache is left

    def never(*args, **kwargs):
        raise AssertionError("prepared again although the cache holds this corpus")

    monkeypatch.setattr(minikit.data, "remove_duplicates", never)
    again, again_report = minikit.prepare_dataset()
    assert again["train"].to_dict() == fresh["train"].to_dict() and again_report == fresh_report
    assert minikit.prepare_dataset()[0]["train"].to_dict() == fresh["train"].to_dict()  # from memory, uncorrupted
    with pytest.raises(AssertionError, match="prepared again"):
        minikit.prepare_dataset(seed=7)  # another argument is another entry

    (corpus / "tech" / "000.txt").write_text("tech story rewritten " + " ".join(_words(12, "x")))
    with pytest.raises(AssertionError, match="prepared again"):
        minikit.prepare_dataset()  # another corpus is another entry
    monkeypatch.undo()


# --- normalization -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("ﬁnance", "finance"),  # ligature
        ("１２３ ＡＢＣ", "123 ABC"),  # full-width digits and letters
        ("café", "café"),  # decomposed e + combining accent composes
        ("  many   spaces\t\tand\nnewlines \u00a0 nbsp  ", "many spaces and newlines nbsp"),
        ("x²", "x2"),
        ("", ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_normalize_text_lowercase_option():
    assert normalize_text("The BBC  Reports", lowercase=True) == "the bbc reports"
    assert normalize_text("The BBC  Reports") == "The BBC Reports"
    assert normalize_text("ＡＢＣ", lowercase=True) == "abc"


@pytest.mark.parametrize("raw", ["ﬁ ＡＢＣ  x²\u00b4", "İstanbul  ǅ ﬃ", "\u2000a\u3000b\u00b4 ", "Straße ΣΑΣ"])
@pytest.mark.parametrize("lowercase", [False, True])
def test_normalize_text_idempotent(raw, lowercase):
    once = normalize_text(raw, lowercase)
    assert normalize_text(once, lowercase) == once


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=40), lowercase=st.booleans())
def test_normalize_text_idempotent_property(text, lowercase):
    once = normalize_text(text, lowercase)
    assert normalize_text(once, lowercase) == once
    assert once == once.strip()
    assert "  " not in once


def test_normalize_dataset_column():
    ds = minikit.normalize(_ds(["  Hello\n WORLD ", "ﬁne"]), lowercase=True)
    assert ds["text"] == ["hello world", "fine"]
    assert ds["id"] == ["r0", "r1"]


# --- near duplicates ---------------------------------------------------------------------------------


def test_near_duplicates_one_word_changed_in_a_long_text():
    base = _words(120)
    changed = list(base)
    changed[60] = "CHANGED"  # kills the 5 shingles that cover position 60
    unrelated = " ".join(_words(120, prefix="u"))
    spaced = "  ".join(base).upper() + "\n"
    pairs = near_duplicate_pairs([" ".join(base), " ".join(changed), unrelated, spaced], threshold=0.9)
    expected = round(111 / 121, 4)  # 116 shingles each, 111 shared
    assert pairs == [(0, 1, expected), (0, 3, 1.0), (1, 3, expected)]


def test_near_duplicates_sixty_words():
    # With 60 words (56 shingles), one changed word mid-text leaves 51 of 61 distinct shingles
    # shared (0.836); at the very end only one shingle differs (55/57 = 0.965).
    base = _words(60)
    middle, end = list(base), list(base)
    middle[30] = "CHANGED"
    end[59] = "CHANGED"
    texts = [" ".join(base), " ".join(middle), " ".join(end)]
    pairs = {(i, j): s for i, j, s in near_duplicate_pairs(texts, threshold=0.5)}
    assert pairs[(0, 1)] == round(51 / 61, 4)
    assert pairs[(0, 2)] == round(55 / 57, 4)
    at_09 = near_duplicate_pairs(texts, threshold=0.9)
    assert (0, 2, round(55 / 57, 4)) in at_09
    assert all((i, j) != (0, 1) for i, j, _ in at_09)


def test_near_duplicates_case_and_whitespace_are_identical():
    a = "Shares in the company rose by ten percent on Monday after results"
    b = "  SHARES in the   company rose by TEN percent\non Monday after results "
    assert near_duplicate_pairs([a, b], threshold=1.0) == [(0, 1, 1.0)]


def test_near_duplicates_short_texts_and_unrelated():
    assert near_duplicate_pairs(["Big win", "big   WIN", "small loss"], threshold=0.9) == [(0, 1, 1.0)]
    assert near_duplicate_pairs(["only one text"]) == []
    assert near_duplicate_pairs([" ".join(_words(50, "a")), " ".join(_words(50, "b"))], threshold=0.01) == []


@pytest.mark.parametrize("threshold", [0, -0.5, 1.01])
def test_near_duplicates_bad_threshold(threshold):
    with pytest.raises(ValueError, match="threshold"):
        near_duplicate_pairs(["a b c", "a b c"], threshold=threshold)


def test_find_and_remove_near_duplicates_small():
    base = _words(120)
    changed = list(base)
    changed[60] = "CHANGED"
    texts = ["unique article one " * 3, " ".join(base), "other text entirely " * 4, " ".join(changed),
             " ".join(base), "  ".join(base).upper()]
    ds = _ds(texts, labels=[0, 1, 0, 1, 1, 2], names=["a", "b", "c"])
    report = minikit.find_duplicates(ds, near_threshold=0.9)
    assert report.exact_groups == [[1, 4]]
    assert report.n_exact == 1
    assert report.removed == [3, 4, 5]
    assert report.label_conflicts == [[1, 3, 4, 5]]  # label 2 on the upper-case copy
    kept, report2 = minikit.remove_duplicates(ds, near_threshold=0.9)
    assert kept["id"] == ["r0", "r1", "r2"]
    assert report2.removed == report.removed
    assert "1 exact duplicates, 2 more near-duplicates, 3 removed, 3 kept" in report.summary()
    # Exact only: the case variant and the one-word change stay.
    kept_exact, _ = minikit.remove_duplicates(ds, near_threshold=None)
    assert kept_exact["id"] == ["r0", "r1", "r2", "r3", "r5"]


# --- splits ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bbc_split(bbc):
    return minikit.split_dataset(bbc, seed=42)


def test_split_sizes_and_stratification(bbc, bbc_split):
    assert list(bbc_split) == ["train", "validation", "test"]
    total = Counter(bbc["label"])
    for name, fraction in [("train", 0.70), ("validation", 0.15), ("test", 0.15)]:
        split = bbc_split[name]
        assert len(split) == pytest.approx(fraction * len(bbc), abs=2)
        counts = Counter(split["label"])
        for label, n in total.items():
            assert abs(counts[label] - fraction * n) <= 1, (name, label, counts[label], fraction * n)
        assert split.features["label"].names == bbc.features["label"].names


def test_split_is_a_partition(bbc, bbc_split):
    ids = {name: set(split["id"]) for name, split in bbc_split.items()}
    assert not ids["train"] & ids["validation"]
    assert not ids["train"] & ids["test"]
    assert not ids["validation"] & ids["test"]
    assert ids["train"] | ids["validation"] | ids["test"] == set(bbc["id"])
    assert sum(len(s) for s in bbc_split.values()) == len(bbc)


def test_split_seed(bbc, bbc_split):
    again = minikit.split_dataset(bbc, seed=42)
    other = minikit.split_dataset(bbc, seed=7)
    for name in bbc_split:
        assert again[name]["id"] == bbc_split[name]["id"]
    assert set(other["test"]["id"]) != set(bbc_split["test"]["id"])


def test_split_custom_fractions(bbc):
    splits = minikit.split_dataset(bbc, test_size=0.2, validation_size=0.1, seed=1)
    assert len(splits["test"]) == pytest.approx(0.2 * len(bbc), abs=2)
    assert len(splits["validation"]) == pytest.approx(0.1 * len(bbc), abs=2)


@pytest.mark.parametrize("test_size, validation_size, word", [
    (0, 0.15, "test_size"), (1, 0.15, "test_size"), (-0.1, 0.15, "test_size"), (0.15, 0, "validation_size"),
    (0.15, 1.5, "validation_size"), (0.5, 0.5, "no training data"), (0.6, 0.45, "no training data"),
])
def test_split_bad_fractions(test_size, validation_size, word):
    ds = _ds([f"text {i}" for i in range(30)], labels=[i % 3 for i in range(30)])
    with pytest.raises(ValueError, match=word):
        minikit.split_dataset(ds, test_size=test_size, validation_size=validation_size)


def test_split_class_with_too_few_rows():
    labels = [0] * 20 + [1] * 20 + [2] * 2
    ds = _ds([f"text {i}" for i in range(len(labels))], labels=labels, names=["big", "large", "tiny"])
    with pytest.raises(minikit.DataError) as info:
        minikit.split_dataset(ds)
    assert "'tiny': 2" in str(info.value)
    assert "fewer than 3" in str(info.value)


def test_split_with_many_classes_and_few_rows_keeps_every_class_in_every_split():
    # 20 classes × 5 rows: a 15 % test split (15 rows) cannot hold the 20 classes; each class is split alone.
    labels = [i % 20 for i in range(100)]
    ds = _ds([f"text number {i}" for i in range(100)], labels=labels, names=[f"c{k}" for k in range(20)])
    with pytest.warns(minikit.DataWarning, match=r"each class was split on its own.*test 20 \(20%\)"):
        splits = minikit.split_dataset(ds)
    for name in ("train", "validation", "test"):
        assert sorted(set(splits[name]["label"])) == list(range(20)), name
    assert sum(len(split) for split in splits.values()) == 100  # nothing dropped
    assert not set(splits["test"]["text"]) & set(splits["train"]["text"])
    with pytest.warns(minikit.DataWarning):
        assert minikit.split_dataset(ds)["test"]["text"] == splits["test"]["text"]  # seeded


def test_per_class_split_leaves_every_class_a_training_row():
    ds = _ds([f"row {i}" for i in range(9)], labels=[0, 0, 0, 1, 1, 1, 2, 2, 2], names=["a", "b", "c"])
    with pytest.warns(minikit.DataWarning):
        splits = minikit.split_dataset(ds, test_size=0.5, validation_size=0.4)
    for name in ("train", "validation", "test"):
        assert sorted(set(splits[name]["label"])) == [0, 1, 2], name


def test_prepare_dataset_reports_what_it_changed_and_refuses_one_class(tmp_path):
    rows = [f"message {i} about topic {'ab'[i % 2]} with some words" for i in range(30)]
    path = tmp_path / "own.csv"
    lines = ["message,category", *[f"{text},{'ab'[i % 2]}" for i, text in enumerate(rows)], f"{rows[0]},a"]
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(minikit.DataWarning, match=r"removed 1 duplicate row\(s\).*own.csv:32"):
        splits, report = minikit.prepare_dataset(str(path), text_column="message", label_column="category")
    assert report.n_removed == 1 and sum(len(s) for s in splits.values()) == 30
    path.write_text("message,category\n" + "".join(f"text {i},a\n" for i in range(12)))
    with pytest.raises(minikit.DataError, match=r"one class only \('a', 12 rows\).*label_column=<column>"):
        minikit.prepare_dataset(str(path), text_column="message", label_column="category")


def test_an_all_empty_text_column_is_named(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("message,category\n" + "".join(f",{'ab'[i % 2]}\n" for i in range(6)))
    with pytest.raises(minikit.DataError, match=r"'message' is empty in all 6 rows.*text_column=<column>"):
        minikit.load_dataset(str(path), text_column="message", label_column="category")


# --- leakage -----------------------------------------------------------------------------------------


def _splits(**parts) -> datasets.DatasetDict:
    out = {}
    for name, texts in parts.items():
        ds = _ds(texts)
        out[name] = ds.map(lambda row, idx: {"id": f"{name}-{idx}"}, with_indices=True)
    return datasets.DatasetDict(out)


def test_check_leakage_finds_planted_copies():
    long = " ".join(_words(120))
    splits = _splits(
        train=["The cat sat on the mat.", "Markets fell sharply.", long, "unique train text"],
        validation=["nothing shared here"],
        test=["  the CAT sat on\tthe mat. ", "Markets fell sharply.", "fresh test text"],
    )
    report = minikit.check_leakage(splits)
    assert not report.ok
    assert report.leaks == {("train", "test"): [("train-0", "test-0"), ("train-1", "test-1")]}
    assert report.n_leaks == 2
    assert "train↔test: 2 shared text(s)" in report.summary()


def test_check_leakage_near_threshold():
    base = _words(120)
    changed = list(base)
    changed[60] = "CHANGED"
    splits = _splits(train=[" ".join(base), "a b"], test=[" ".join(changed), "c d"])
    assert minikit.check_leakage(splits).ok
    report = minikit.check_leakage(splits, near_threshold=0.9)
    assert report.leaks == {("train", "test"): [("train-0", "test-0")]}


def test_check_leakage_ignores_duplicates_within_one_split():
    splits = _splits(train=["same text", "same text"], test=["other text"])
    report = minikit.check_leakage(splits)
    assert report.ok
    assert report.n_leaks == 0


def test_raw_bbc_split_leaks(bbc_split):
    # BBC has 98 exact duplicates: splitting before deduplicating puts some copies in two splits.
    report = minikit.check_leakage(bbc_split)
    assert not report.ok
    train = {normalize_text(t, lowercase=True) for t in bbc_split["train"]["text"]}
    leaked_test = {i for i, t in zip(bbc_split["test"]["id"], bbc_split["test"]["text"])
                   if normalize_text(t, lowercase=True) in train}
    assert {b for _, b in report.leaks[("train", "test")]} == leaked_test
    assert leaked_test


def test_prepared_dataset_has_no_leakage(prepared):
    splits, _ = prepared
    assert list(splits) == ["train", "validation", "test"]
    report = minikit.check_leakage(splits)
    assert report.ok
    assert report.n_leaks == 0
    assert report.summary().startswith("No leakage")
    # Texts are normalized (NFKC, single spaces, stripped) but not lowercased by default.
    sample = splits["train"]["text"][:50]
    assert all(t == normalize_text(t) for t in sample)
    assert any(t != t.lower() for t in sample)


def test_prepared_leak_planted_in_test_is_found(prepared):
    splits, _ = prepared
    train_text, train_id = splits["train"]["text"][0], splits["train"]["id"][0]
    test = splits["test"].add_item({"id": "planted", "text": "  " + train_text.replace(" ", "   ") + "\n",
                                    "label": splits["train"]["label"][0]})
    report = minikit.check_leakage(datasets.DatasetDict(train=splits["train"], validation=splits["validation"],
                                                        test=test))
    assert report.leaks == {("train", "test"): [(train_id, "planted")]}


def test_prepared_dataset_is_stratified(prepared):
    splits, report = prepared
    total = Counter()
    for s in splits.values():
        total.update(s["label"])
    for name, fraction in [("validation", 0.15), ("test", 0.15)]:
        counts = Counter(splits[name]["label"])
        for label, n in total.items():
            assert abs(counts[label] - fraction * n) <= 1


# --- tokenization ------------------------------------------------------------------------------------

LONG_TEXT = " ".join(f"sentence number {i} talks about markets, music, politics and sport." for i in range(40))


def test_tokenize_head(tokenizer):
    ds = _ds([LONG_TEXT, "A short one."])
    out = minikit.tokenize(ds, tokenizer, max_length=32, truncation="head")
    full = tokenizer(LONG_TEXT)["input_ids"]
    long_ids, short_ids = out["input_ids"]
    assert len(long_ids) == 32
    assert long_ids == full[:31] + [tokenizer.sep_token_id]
    assert short_ids == tokenizer("A short one.")["input_ids"]
    assert [len(m) for m in out["attention_mask"]] == [32, len(short_ids)]
    assert all(all(v == 1 for v in m) for m in out["attention_mask"])
    assert {"id", "text", "label", "input_ids", "attention_mask"} <= set(out.column_names)


@pytest.mark.parametrize("max_length, head_fraction", [(32, 0.25), (64, 0.5), (33, 0.25)])
def test_tokenize_head_plus_tail(tokenizer, max_length, head_fraction):
    ds = _ds([LONG_TEXT, "Short text stays whole."])
    out = minikit.tokenize(ds, tokenizer, max_length=max_length, truncation="head+tail", head_fraction=head_fraction)
    full = tokenizer(LONG_TEXT)["input_ids"]
    ids = out["input_ids"][0]
    budget = max_length - 2
    head = int(budget * head_fraction)
    tail = budget - head
    assert len(ids) == max_length
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert ids.count(tokenizer.cls_token_id) == 1 and ids.count(tokenizer.sep_token_id) == 1
    assert ids[1:1 + head] == full[1:1 + head]  # the first tokens of the text
    assert ids[1 + head:-1] == full[-1 - tail:-1]  # the last tokens of the text
    assert out["attention_mask"][0] == [1] * max_length
    assert out["input_ids"][1] == tokenizer("Short text stays whole.")["input_ids"]


def test_tokenize_lengths_on_bbc_sample(bbc, tokenizer):
    sample = bbc.select(range(0, len(bbc), 45))
    lengths = minikit.token_lengths(sample["text"], tokenizer)
    for truncation in ("head", "head+tail"):
        out = minikit.tokenize(sample, tokenizer, max_length=128, truncation=truncation)
        got = np.array([len(ids) for ids in out["input_ids"]])
        np.testing.assert_array_equal(got, np.minimum(lengths, 128))


def test_tokenize_dataset_dict(tokenizer):
    splits = datasets.DatasetDict(train=_ds(["one two three"]), test=_ds([LONG_TEXT]))
    out = minikit.tokenize(splits, tokenizer, max_length=16, truncation="head+tail")
    assert isinstance(out, datasets.DatasetDict)
    assert len(out["test"]["input_ids"][0]) == 16
    assert out["train"]["input_ids"][0] == tokenizer("one two three")["input_ids"]


def test_tokenize_bad_arguments(tokenizer):
    ds = _ds(["text"])
    with pytest.raises(ValueError, match="truncation='tail'"):
        minikit.tokenize(ds, tokenizer, truncation="tail")
    with pytest.raises(ValueError, match="max_length=2"):
        minikit.tokenize(ds, tokenizer, max_length=2)


def test_token_lengths(tokenizer):
    texts = ["hello", "hello world", "", LONG_TEXT]
    lengths = minikit.token_lengths(texts, tokenizer)
    assert isinstance(lengths, np.ndarray)
    assert lengths.tolist() == [len(tokenizer(t)["input_ids"]) for t in texts]
    assert lengths[0] == 3 and lengths[2] == 2  # [CLS] hello [SEP]; [CLS] [SEP]
    assert lengths[3] > 512  # not truncated


def test_truncated_share():
    lengths = np.array([10, 100, 128, 129, 600])
    assert minikit.truncated_share(lengths, 128) == pytest.approx(0.4)  # strictly longer
    assert minikit.truncated_share(lengths, 5) == 1.0
    assert minikit.truncated_share(lengths, 600) == 0.0
    assert minikit.truncated_share([1, 2, 3, 4], 2) == 0.5
    assert isinstance(minikit.truncated_share(lengths, 128), float)


def test_kept_token_share_by_hand():
    assert kept_token_share([50, 100, 300], 128) == pytest.approx((50 + 100 + 128) / 450)
    assert kept_token_share(np.array([10, 20]), 512) == 1.0  # nothing cut
    assert kept_token_share([400, 600], 100) == 0.2


def test_fixed_subset_draws_the_same_rows_sorted_by_length(tokenizer):
    texts = [" ".join(["word"] * (i % 7 + 1)) + f" row{i}" for i in range(20)]
    ds = datasets.Dataset.from_dict({"text": texts, "label": list(range(20))})  # label = row index
    batches, labels = fixed_subset(tokenizer, ds, 9, max_length=16, batch_size=4, seed=3)
    rows = np.sort(np.random.default_rng(3).permutation(20)[:9])
    assert sorted(labels.tolist()) == rows.tolist()  # the seeded rows, each once
    assert [len(b["input_ids"]) for b in batches] == [4, 4, 1] and all(set(b) == {"input_ids", "attention_mask"}
                                                                       for b in batches)
    lengths = [int(n) for b in batches for n in b["attention_mask"].sum(dim=1)]
    assert lengths == sorted(lengths)  # short rows first: little padding
    assert lengths == [len(tokenizer(texts[r])["input_ids"]) for r in labels]  # labels follow the batches' order
    again, labels_again = fixed_subset(tokenizer, ds, 9, max_length=16, batch_size=4, seed=3)
    assert labels_again.tolist() == labels.tolist() and all(torch.equal(a["input_ids"], b["input_ids"])
                                                            for a, b in zip(batches, again))
