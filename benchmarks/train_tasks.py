"""Real tasks for the training benchmarks, built as a user's chat data file would be (system prompt included).

Each builder reads a data set from a path given on the command line (none of them is part of cadre; see
``../shared/datasets/README.md``) and returns a :class:`Task`: seeded training rows and test rows as
``{"messages": [system, user, assistant]}``, how to score an answer, and how many tokens an answer needs.

- ``hwu64``: HWU64 intents (Liu et al., IWSDS 2019, arXiv:1903.05566; CC BY 4.0): a seeded choice of 10 intents,
  60 training utterances each, the real test split of those intents; the system prompt lists the 10 names.
- ``pubmedqa``: PubMedQA PQA-L (Jin et al., EMNLP 2019, arXiv:1909.06146; MIT): yes/no/maybe over the question
  and the start of its abstract (``context_words``), exact label match. The 1,000 items are split by seed.
- ``gsm8k``: GSM8K (Cobbe et al. 2021, arXiv:2110.14168; MIT) ``train.jsonl``: the worked solution is the answer
  (calculator annotations ``<<...>>`` removed); scored by the number after ``####`` (exact match).
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TASKS", "Task", "final_number", "gsm8k_task", "hwu64_task", "pubmedqa_task"]


@dataclass
class Task:
    train: list[dict]
    test: list[dict]
    score: Callable[[str, str], bool]  # (model answer, reference answer) -> right?
    max_tokens: int  # generation cap at evaluation
    majority: float  # accuracy of always answering the most common training answer (for scale)


def _chat(system: str, user: str, answer: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
        ]
    }


def _exact(answer: str, reference: str) -> bool:
    return answer.strip() == reference.strip()


def _majority(train: list[dict], test: list[dict]) -> float:
    answers = [r["messages"][-1]["content"] for r in train]
    top = max(sorted(set(answers)), key=answers.count)  # sorted: ties break the same way every run
    return sum(r["messages"][-1]["content"] == top for r in test) / max(1, len(test))


def hwu64_task(folder: Path, seed: int, n_intents: int = 10, per_intent: int = 60, n_test: int = 200) -> Task:
    """10 seeded intents × 60 real training utterances; a seeded sample of their real test utterances."""

    def read(name: str) -> list[dict[str, str]]:
        with (folder / name).open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))

    train_rows, test_rows = read("train.csv"), read("test.csv")
    rng = random.Random(seed)
    intents = sorted(rng.sample(sorted({r["intent"] for r in train_rows}), n_intents))
    system = (
        "Classify the user's request into exactly one of these intents: "
        + ", ".join(intents)
        + ". Answer with the intent name only."
    )
    train = []
    for intent in intents:
        pool = [r for r in train_rows if r["intent"] == intent]
        train += [_chat(system, r["text"], r["intent"]) for r in rng.sample(pool, min(per_intent, len(pool)))]
    rng.shuffle(train)
    test = [_chat(system, r["text"], r["intent"]) for r in test_rows if r["intent"] in intents]
    test = rng.sample(test, min(n_test, len(test)))
    return Task(train, test, _exact, 24, _majority(train, test))


def pubmedqa_task(
    path: Path, seed: int, n_train: int = 400, n_test: int = 200, context_words: int = 40
) -> Task:
    """PQA-L yes/no/maybe: question + the first ``context_words`` words of the abstract; seeded split."""
    path = Path(path) / "ori_pqal.json" if Path(path).is_dir() else Path(path)
    items = json.loads(path.read_text(encoding="utf-8"))
    system = "Answer the question about the biomedical abstract with one word: yes, no or maybe."
    rows = []
    for key in sorted(items):
        it = items[key]
        context = " ".join(" ".join(it["CONTEXTS"]).split()[:context_words])
        rows.append(
            _chat(system, f"Abstract: {context} ...\nQuestion: {it['QUESTION']}", it["final_decision"])
        )
    random.Random(seed).shuffle(rows)
    train, test = rows[:n_train], rows[n_train : n_train + n_test]
    return Task(train, test, _exact, 4, _majority(train, test))


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def final_number(text: str) -> str | None:
    """The number after the last ``####`` (commas and ``$`` dropped), else None."""
    if "####" not in text:
        return None
    m = _NUMBER.search(text.rsplit("####", 1)[1].replace(",", "").replace("$", ""))
    if not m:
        return None
    value = m.group(0)
    return value.rstrip("0").rstrip(".") if "." in value else value


def gsm8k_task(path: Path, seed: int, n_train: int = 400, n_test: int = 50) -> Task:
    """Worked solutions ending in ``#### N``; a seeded split of ``train.jsonl``, scored on the final number."""
    path = Path(path) / "train.jsonl" if Path(path).is_dir() else Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    rng = random.Random(seed)
    picked = rng.sample(range(len(lines)), n_train + n_test)
    system = "Solve the maths word problem step by step, then give the final answer after ####."
    rows = []
    for i in picked:
        item = json.loads(lines[i])
        answer = re.sub(r"<<[^>]*>>", "", item["answer"])
        rows.append(_chat(system, item["question"], answer))
    train, test = rows[:n_train], rows[n_train:]

    def score(answer: str, reference: str) -> bool:
        got = final_number(answer)
        return got is not None and got == final_number(reference)

    return Task(train, test, score, 200, 0.0)


TASKS: dict[str, Callable[[Path, int, int], Task]] = {
    "hwu64": lambda p, seed, n_test: hwu64_task(p, seed, n_test=n_test),
    "pubmedqa": lambda p, seed, n_test: pubmedqa_task(p, seed, n_test=n_test),
    "gsm8k": lambda p, seed, n_test: gsm8k_task(p, seed, n_test=n_test),
}
