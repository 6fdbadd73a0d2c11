"""The harder built-in task, bbc-headlines (issue 23): its builder keeps chapter 2's discipline."""

from collections import Counter

import pytest

import minikit
from minikit import data, loading
from minikit.errors import UnknownNameError

pytestmark = pytest.mark.filterwarnings("ignore:1 file\\(s\\) were not UTF-8")  # the corpus' one cp1252 file


@pytest.fixture(scope="module")
def headlines():
    return data.prepare_dataset(loading.BBC_HEADLINES)


def test_each_article_stays_in_its_bbc_news_split(headlines, prepared):
    splits, _report = headlines
    articles, _ = prepared
    split_of = {i: name for name, ds in articles.items() for i in ds["id"]}
    for name, ds in splits.items():
        assert ds["id"] and {split_of[i] for i in ds["id"]} == {name}
    ids = [i for ds in splits.values() for i in ds["id"]]
    assert len(ids) == len(set(ids))  # no article in two splits


def test_no_headline_in_two_splits_and_texts_are_headlines(headlines):
    splits, _report = headlines
    assert data.check_leakage(splits).ok
    raw = loading.load_dataset(loading.BBC_NEWS)
    first_line = {i: text.strip().split("\n")[0].strip() for i, text in zip(raw["id"], raw["text"])}
    for ds in splits.values():
        for i, text in zip(ds["id"], ds["text"]):
            assert text == data.normalize_text(first_line[i])
            assert 1 <= len(text.split()) <= 15


def test_sizes_and_labels_are_as_the_card_states(headlines, prepared):
    splits, report = headlines
    card = loading.list_datasets().loc[loading.BBC_HEADLINES]
    assert card["rows"] == " / ".join(f"{len(splits[s]):,}" for s in ("train", "validation", "test"))
    assert card["classes"] == len(splits["train"].features["label"].names) == 5
    # Stratified as bbc-news: each split's class counts differ from the article split's only by the repeats dropped
    articles, article_report = prepared
    repeats = report.n_removed - article_report.n_removed
    assert repeats == 13
    for name in splits:
        ours, theirs = Counter(splits[name]["label"]), Counter(articles[name]["label"])
        assert all(0 <= theirs[k] - ours[k] for k in theirs)
        assert sum(theirs.values()) - sum(ours.values()) <= repeats
    assert not report.label_conflicts
    names = splits["test"].features["label"].names
    assert dict(Counter(names[i] for i in splits["test"]["label"])) == {  # as data/README.md states
        "business": 75, "entertainment": 54, "politics": 59, "sport": 72, "tech": 49}


def test_the_report_counts_articles_and_repeated_headlines(headlines, prepared):
    _splits, report = headlines
    _articles, article_report = prepared
    assert report.n_input == article_report.n_input == 2225
    assert set(article_report.removed) < set(report.removed)
    assert report.n_kept == sum(len(ds) for ds in headlines[0].values())


def test_listed_by_list_datasets_and_loadable_raw():
    table = minikit.list_datasets()
    assert list(table.index[:2]) == [loading.BBC_NEWS, loading.BBC_HEADLINES]
    raw = loading.load_dataset(loading.BBC_HEADLINES)
    assert len(raw) == 2225 and raw.column_names == ["id", "text", "label"]
    assert raw[0]["text"] == "Ad sales boost Time Warner profit"


def test_an_unknown_name_offline_names_the_built_in_datasets(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UnknownNameError, match="bbc-headlines"):
        loading.load_dataset("bbc-headline")
