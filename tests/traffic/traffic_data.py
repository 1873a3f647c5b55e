"""Generated traffic of mixed tasks (cadre.synth's generators), as the gateway would have captured it."""

from __future__ import annotations

from pathlib import Path

from cadre.synth import generate, get_generator
from cadre.traffic import TrafficRecord, TrafficStore

TASKS = ("intents", "invoices", "normalize", "out_of_scope")


def mixed_traffic(n_per_task: int, *, seed: int = 0) -> tuple[list[TrafficRecord], list[str]]:
    """Records (the generator's answer as the generalist's) and each one's true task, interleaved."""
    per_task = {t: list(generate(get_generator(t), split="train", n=n_per_task, seed=seed)) for t in TASKS}
    records: list[TrafficRecord] = []
    labels: list[str] = []
    for i in range(n_per_task):
        for task in TASKS:
            rec = per_task[task][i]
            user = next(m["content"] for m in rec["messages"] if m["role"] == "user")
            system = [
                m for m in rec["messages"] if m["role"] == "system"
            ]  # one per task, as an app sends them
            records.append(
                TrafficRecord(
                    request_id=f"{task}-{i}",
                    endpoint="chat",
                    requested="auto",
                    model="generalist",
                    messages=[*system, {"role": "user", "content": user}],
                    response=str(rec["answer"]),
                    prompt_tokens=len(user) // 4,
                    completion_tokens=len(str(rec["answer"])) // 4,
                )
            )
            labels.append(task)
    return records, labels


def write_store(path: Path, records: list[TrafficRecord]) -> Path:
    with TrafficStore(path, create=True) as store:
        store.insert(records)
    return path
