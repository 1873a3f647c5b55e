from __future__ import annotations

import pytest

from cadre.errors import ConfigError
from cadre.knowledge import cited_numbers, groundedness, mrr, recall_at_k
from cadre.knowledge.evaluation import LabelledQuery, evaluate_retrieval
from cadre.knowledge.protocol import Chunk, Passage


def test_recall_and_mrr_by_hand() -> None:
    ranked = [["a", "b", "c"], ["x", "y", "z"], ["q", "r", "s"]]
    relevant = [{"a"}, {"z", "w"}, {"nothing"}]
    assert recall_at_k(ranked, relevant, 1) == pytest.approx((1 + 0 + 0) / 3)
    assert recall_at_k(ranked, relevant, 3) == pytest.approx((1 + 0.5 + 0) / 3)
    assert mrr(ranked, relevant) == pytest.approx((1 + 1 / 3 + 0) / 3)
    with pytest.raises(ConfigError):
        recall_at_k(ranked, relevant[:2], 3)


def _p(cid: str, source: str, text: str = "t") -> Passage:
    return Passage(Chunk(cid, source, 0, len(text), text, {"file": source.split("#")[0]}), 1.0)


def test_evaluate_retrieval_matches_labels_by_chunk_source_or_file() -> None:
    results = {
        "q1": [_p("c9", "/d/x.md"), _p("c1", "/d/a.md")],
        "q2": [_p("c2", "/d/r.jsonl#7")],
        "q3": [_p("c3", "/d/z.md")],
    }
    queries = [
        LabelledQuery("q1", {"c1"}),  # by chunk id, at rank 2
        LabelledQuery("q2", {"/d/r.jsonl"}),  # by file
        LabelledQuery("q3", {"/d/other.md", "/d/z.md"}),  # by source; one of two found
    ]
    report = evaluate_retrieval(lambda q, k: results[q][:k], queries, k=5)
    assert report.recall_at_k == pytest.approx((1 + 1 + 0.5) / 3)
    assert report.mrr == pytest.approx((0.5 + 1 + 1) / 3)
    with pytest.raises(ConfigError):
        evaluate_retrieval(lambda q, k: [], [], k=5)


def test_cited_numbers() -> None:
    assert cited_numbers("A [2]. B [1, 3][2]. C [4; 5].") == [2, 1, 3, 4, 5]
    assert cited_numbers("no citations here (1)") == []


def test_groundedness_without_citations_uses_all_passages() -> None:
    passages = ["The river Quillon is brown and 40 km long.", "Its source is in the Sorrel hills."]
    assert (
        groundedness("The Quillon is 40 km long. Its source is in the Sorrel hills.", passages).score == 1.0
    )
    assert (
        groundedness("It rises in the hills.", passages).score == 0.0
    )  # a paraphrase the lexical check misses
    report = groundedness("The Quillon is 90 km long.", passages)
    assert report.score == 0.0 and report.sentences[0].missing == ["90"]
    assert groundedness("", passages).score == 0.0
    # a citation restricts the evidence to the cited passage
    assert groundedness("Its source is in the Sorrel hills [1].", passages).score == 0.0
