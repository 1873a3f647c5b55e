"""End to end: index a generated corpus of invented facts, ask questions only it can answer, check citations."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadre.knowledge import evaluate_retrieval, ground, groundedness, open_corpus
from cadre.knowledge.evaluation import LabelledQuery
from cadre.knowledge.ingest import read_documents

from .fictional import QUESTIONS, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, embedder):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("e2e")
    c = open_corpus(root / "corpus", create=True, embedder=embedder)
    report = c.add([write_corpus(root / "docs")])
    assert not report.failed and len(report.indexed) == 5
    yield c
    c.close()


def _source_text(source: str) -> str:
    """The text a citation's offsets index into: re-read the cited file the way ingestion did."""
    path = Path(source.split("#", 1)[0])
    docs, _ = read_documents(path, path.read_bytes())
    return next(d.text for d in docs if d.source == source)


@pytest.mark.parametrize("q", QUESTIONS, ids=lambda q: q.answer)
def test_grounded_prompt_cites_the_passage_holding_the_answer(corpus, q) -> None:  # type: ignore[no-untyped-def]
    messages = [
        {"role": "system", "content": "You are the station's assistant."},
        {"role": "user", "content": q.text},
    ]
    grounded, citations = ground(messages, corpus, k=3)
    assert messages[0]["content"] == "You are the station's assistant."  # the input is not modified
    assert len(grounded) == 2 and grounded[1] == messages[1]
    system = grounded[0]["content"]
    assert system.startswith("You are the station's assistant.") and "[1]" in system
    assert [c["index"] for c in citations] == [1, 2, 3]
    # The citation's offsets, applied to the cited file, give the passage that holds the answer.
    spans = [" ".join(_source_text(c["source"])[c["start"] : c["end"]].split()) for c in citations]
    right = [i for i, span in enumerate(spans) if q.answer in span]
    assert right, f"no citation holds {q.answer!r}: {spans}"
    cite = citations[right[0]]
    assert Path(cite["source"].split("#")[0]).name == q.file
    assert (
        f"[{cite['index']}] (" in system and spans[right[0]] in system
    )  # shown to the model under its number


def test_retrieval_recall_and_mrr_on_the_generated_questions(corpus) -> None:  # type: ignore[no-untyped-def]
    labelled = [
        LabelledQuery(
            q.text, {c.chunk_id for c in corpus.store.iter_chunks() if q.answer in " ".join(c.text.split())}
        )
        for q in QUESTIONS
    ]
    assert all(lq.relevant for lq in labelled)
    report = evaluate_retrieval(lambda text, k: corpus.search(text, k=k), labelled, k=3)
    assert report.n_queries == len(QUESTIONS)
    assert report.recall_at_k == 1.0
    assert report.mrr >= 0.9  # measured 0.95: one question ranks its passage second (see docs/knowledge.md)


def test_groundedness_of_answers_against_their_citations(corpus, embedder) -> None:  # type: ignore[no-untyped-def]
    _, citations = ground([{"role": "user", "content": "How long is the Glimmerfen bridge?"}], corpus, k=3)
    passages = corpus.search("How long is the Glimmerfen bridge?", k=3)
    assert [p.chunk.chunk_id for p in passages] == [c["chunk_id"] for c in citations]
    good = groundedness("The Glimmerfen bridge is 413 meters long [1].", passages, embedder=embedder)
    assert good.grounded and good.cited == [1]
    wrong_number = groundedness("The Glimmerfen bridge is 980 meters long [1].", passages, embedder=embedder)
    assert not wrong_number.grounded and "980" in wrong_number.sentences[0].missing
    invented = groundedness(
        "The bridge is 413 meters long [1]. It was built by dragons from the moon in a single night [1].",
        passages,
    )
    assert invented.score == 0.5
    bad_ref = groundedness("The bridge is 413 meters long [7].", passages)
    assert bad_ref.invalid_citations == [7] and not bad_ref.grounded


@pytest.mark.slow
def test_smollm2_answers_from_the_injected_passage(corpus) -> None:  # type: ignore[no-untyped-def]
    """A real generation with the bundled SmolLM2-135M: the answer comes from the corpus, not the model."""
    from cadre.runtime import SamplingParams, load_backend

    backend = load_backend("smollm2-135m", n_ctx=2048)
    try:
        question = "How long is the Glimmerfen bridge?"
        grounded, citations = ground([{"role": "user", "content": question}], corpus, k=2)
        answer = backend.chat(grounded, SamplingParams(max_tokens=48, temperature=0.0)).text
        bare = backend.chat([{"role": "user", "content": question}], SamplingParams(max_tokens=48)).text
    finally:
        backend.close()
    assert "413" in answer, answer
    assert "413" not in bare  # without the corpus the model cannot know it
    assert citations[0]["source"].endswith("glimmerfen.html")
