"""Training data: files → validated chat examples → token ids with an assistant-only loss mask → batches.

Accepted inputs (the format is chosen by the path):

- ``*.jsonl`` / ``*.json`` (one object per line): ``{"messages": [{"role", "content"}, ...]}``,
  ``{"prompt": ..., "completion": ...}``, or any fields turned into a chat by ``template`` + ``target``;
- ``*.csv`` with a header: the ``prompt_column``/``completion_column`` columns, or ``template`` + ``target``;
- a directory written by ``datasets.Dataset.save_to_disk`` (its ``train`` split when it holds several).

Every row is checked before anything is tokenized, and errors name the file and line.

The loss mask is computed by hand: SmolLM2's chat template has no ``{% generation %}`` markers, so the
assistant spans are found by rendering each conversation prefix and diffing the strings.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cadre.config.jsonl import iter_jsonl
from cadre.errors import DataError, NotFoundError
from cadre.runtime.trained_prompt import TrainedPrompt
from cadre.train.config import TrainConfig

__all__ = [
    "ChatExample",
    "DataSummary",
    "TokenizedExample",
    "TruncationReport",
    "apply_constant_system",
    "epoch_batches",
    "load_examples",
    "split_examples",
    "summarize",
    "tokenize_examples",
]

_ROLES = {"system", "user", "assistant"}
IGNORE_INDEX = -100  # label value that torch's cross_entropy skips


@dataclass(frozen=True)
class ChatExample:
    """One conversation; the assistant turns are what the model learns to produce."""

    messages: tuple[tuple[str, str], ...]  # (role, content)
    source: str  # "file:line" for error messages

    @property
    def answer(self) -> str:
        """The last assistant message (the label, for classification-style data)."""
        return next(c for r, c in reversed(self.messages) if r == "assistant")

    def as_dicts(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where the loss is not computed
    source: str

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class TruncationReport:
    """What ``tokenize_examples`` had to cut because of ``max_length``."""

    truncated: int = 0
    dropped: int = 0
    longest: int = 0
    first_source: str | None = None


@dataclass
class DataSummary:
    examples: int
    distinct_answers: int
    top_answers: list[tuple[str, int]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------- loading


def load_examples(path: Path, config: TrainConfig) -> tuple[list[ChatExample], list[ChatExample] | None]:
    """Read and validate every row of ``path``; return (examples, eval examples found in the same source).

    The second item is a ``validation``/``test`` split of a ``datasets`` directory, else None.

    Raises:
        NotFoundError: the path does not exist.
        DataError: a row is malformed (the message names the file and line) or the data is empty.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"data file {str(path)!r} does not exist")
    extra: list[ChatExample] | None = None
    if path.is_dir():
        rows, extra_rows = _dataset_rows(path)
        examples = [_row_to_example(row, src, config) for src, row in rows]
        if extra_rows is not None:
            extra = [_row_to_example(row, src, config) for src, row in extra_rows]
    elif path.suffix.lower() == ".csv":
        examples = [_row_to_example(row, src, config) for src, row in _csv_rows(path)]
    elif path.suffix.lower() in {".jsonl", ".json", ".ndjson"}:
        examples = [_row_to_example(row, src, config) for src, row in _jsonl_rows(path)]
    else:
        raise DataError(
            f"{path}: unknown data format {path.suffix!r}; use .jsonl, .csv or a datasets directory"
        )
    if not examples:
        raise DataError(f"{path}: no examples (the file is empty); add at least a few dozen rows")
    return examples, extra


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for lineno, row in iter_jsonl(path, column=True):
        src = f"{path}:{lineno}"
        if not isinstance(row, dict):
            raise DataError(f"{src}: expected a JSON object per line, got {type(row).__name__}")
        yield src, row


def _csv_rows(path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            return
        for row in reader:
            if None in row:
                raise DataError(f"{path}:{reader.line_num}: more fields than the header has columns")
            yield f"{path}:{reader.line_num}", row


def _dataset_rows(
    path: Path,
) -> tuple[list[tuple[str, Mapping[str, Any]]], list[tuple[str, Mapping[str, Any]]] | None]:
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise DataError(
            "reading a datasets directory needs the `datasets` package: pip install datasets"
        ) from None
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise DataError(f"{path}: not a directory written by datasets' save_to_disk ({err})") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise DataError(f"{path}: the dataset has splits {list(ds)} but no 'train' split")
        eval_split = next((s for s in ("validation", "test") if s in ds), None)
        train_rows = [(f"{path}[train]:row {i}", r) for i, r in enumerate(ds["train"])]
        eval_rows = (
            [(f"{path}[{eval_split}]:row {i}", r) for i, r in enumerate(ds[eval_split])]
            if eval_split
            else None
        )
        return train_rows, eval_rows
    return [(f"{path}:row {i}", r) for i, r in enumerate(ds)], None


def _row_to_example(row: Mapping[str, Any], src: str, config: TrainConfig) -> ChatExample:
    messages: list[tuple[str, str]]
    if config.template is not None:
        assert config.target is not None  # checked by TrainConfig
        try:
            user = config.template.format_map(dict(row))
        except KeyError as err:
            raise DataError(
                f"{src}: the template uses field {err.args[0]!r} but the row has {sorted(row)}"
            ) from None
        except (ValueError, IndexError) as err:
            raise DataError(
                f"{src}: the template {config.template!r} is not a valid format string ({err})"
            ) from None
        if config.target not in row:
            raise DataError(f"{src}: no target field {config.target!r}; the row has {sorted(row)}")
        answer = _scalar_text(row[config.target], src, config.target)
        messages = [("user", user), ("assistant", answer)]
    elif "messages" in row:
        messages = _check_messages(row["messages"], src)
    elif config.prompt_column in row and config.completion_column in row:
        prompt = _scalar_text(row[config.prompt_column], src, config.prompt_column)
        answer = _scalar_text(row[config.completion_column], src, config.completion_column)
        messages = [("user", prompt), ("assistant", answer)]
    else:
        raise DataError(
            f"{src}: expected a 'messages' list, or '{config.prompt_column}' and '{config.completion_column}' "
            f"fields, or --template/--target for other fields; the row has {sorted(row)}"
        )
    if not any(role == "assistant" and content.strip() for role, content in messages):
        raise DataError(f"{src}: no non-empty assistant message, so there is nothing to learn from this row")
    if config.system is not None and messages[0][0] != "system":
        messages.insert(0, ("system", config.system))
    return ChatExample(messages=tuple(messages), source=src)


def _scalar_text(value: Any, src: str, name: str) -> str:
    if value is None:
        raise DataError(f"{src}: field {name!r} is empty")
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    raise DataError(f"{src}: field {name!r} has an unsupported type {type(value).__name__}")


def _check_messages(value: Any, src: str) -> list[tuple[str, str]]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{src}: 'messages' must be a non-empty list of {{'role', 'content'}} objects")
    out: list[tuple[str, str]] = []
    for i, msg in enumerate(value):
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            raise DataError(f"{src}: messages[{i}] must be an object with 'role' and 'content'")
        role, content = msg["role"], msg["content"]
        if role not in _ROLES:
            raise DataError(f"{src}: messages[{i}] has role {role!r}; use one of {sorted(_ROLES)}")
        if not isinstance(content, str):
            raise DataError(f"{src}: messages[{i}].content must be a string, got {type(content).__name__}")
        if role == "system" and i != 0:
            raise DataError(f"{src}: messages[{i}] is a system message; only the first message may be one")
        out.append((role, content))
    return out


# ---------------------------------------------------------------------------------------- checks and splits


def summarize(examples: Sequence[ChatExample]) -> DataSummary:
    counts = Counter(ex.answer.strip() for ex in examples)
    return DataSummary(
        examples=len(examples), distinct_answers=len(counts), top_answers=counts.most_common(5)
    )


def check_usable(examples: Sequence[ChatExample], *, what: str) -> DataSummary:
    """Reject data a model cannot learn anything useful from.

    Raises:
        DataError: no examples, or every example has the same answer (a one-class dataset).
    """
    if not examples:
        raise DataError(f"{what}: no examples; add at least a few dozen rows")
    summary = summarize(examples)
    if len(examples) >= 2 and summary.distinct_answers == 1:
        answer = summary.top_answers[0][0]
        raise DataError(
            f"{what}: all {len(examples)} examples have the same answer {answer[:60]!r}, so the model would only "
            "learn to always say it; add examples of the other classes/answers"
        )
    return summary


def split_examples(
    examples: Sequence[ChatExample], fraction: float, seed: int
) -> tuple[list[ChatExample], list[ChatExample]]:
    """Hold out ``fraction`` of the examples (at least one, when fraction > 0), reproducibly from ``seed``."""
    if fraction <= 0 or len(examples) < 2:
        return list(examples), []
    order = np.random.default_rng(seed).permutation(len(examples))
    n_eval = max(1, round(len(examples) * fraction))
    held = set(order[:n_eval].tolist())
    train = [ex for i, ex in enumerate(examples) if i not in held]
    evals = [ex for i, ex in enumerate(examples) if i in held]
    return train, evals


def apply_constant_system(
    train: Sequence[ChatExample], evals: Sequence[ChatExample], config: TrainConfig
) -> tuple[list[ChatExample], list[ChatExample], TrainedPrompt]:
    """Keep, drop or replace the system prompt every training example shares (``config.constant_system``).

    Held-out examples that carry the same prompt get the same treatment. Returns the examples and the record
    of the prompt trained with, which goes into the adapter's metadata.

    Raises:
        DataError: ``drop``/``replace`` asked for, but the training examples do not all start with one system
            prompt.
    """
    firsts = Counter(ex.messages[0][1] if ex.messages[0][0] == "system" else None for ex in train)
    constant = next(iter(firsts)) if len(firsts) == 1 else None
    if config.constant_system == "keep":
        return list(train), list(evals), TrainedPrompt("keep", constant, constant)
    if constant is None:
        without = firsts.pop(None, 0)
        raise DataError(
            f"--constant-system {config.constant_system}: the training examples do not share one system prompt "
            f"({len(firsts)} distinct, {without} examples without one); use --constant-system keep"
        )
    new = config.replacement_system if config.constant_system == "replace" else None
    head: tuple[tuple[str, str], ...] = (("system", new),) if new else ()

    def convert(ex: ChatExample) -> ChatExample:
        if ex.messages[0] != ("system", constant):
            return ex
        return ChatExample(messages=head + ex.messages[1:], source=ex.source)

    return (
        [convert(ex) for ex in train],
        [convert(ex) for ex in evals],
        TrainedPrompt(config.constant_system, new, constant),
    )


# ------------------------------------------------------------------------------------------------ tokenizing


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """Render ``messages`` with the chat template; return the text and the char spans the loss covers.

    A span is an assistant message's content plus the end-of-turn marker the template writes after it (so the
    model learns to stop), without trailing whitespace.

    Raises:
        DataError: the template renders a conversation prefix that is not a prefix of the whole (the mask
            cannot be derived by diffing).
    """
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        upto = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (full.startswith(upto) and upto.startswith(before)):
            raise DataError(
                "the chat template is not prefix-stable (rendering a conversation prefix changes earlier text); "
                "assistant-only loss masking needs one"
            )
        end = len(upto.rstrip())
        if end > len(before):
            spans.append((len(before), end))
    return full, spans


def tokenize_examples(
    examples: Sequence[ChatExample],
    tokenizer: Any,
    *,
    max_length: int,
    too_long: str = "truncate",
) -> tuple[list[TokenizedExample], TruncationReport]:
    """Tokenize with the chat template; label only assistant tokens; apply the ``too_long`` policy.

    ``truncate`` keeps the last ``max_length`` tokens (the answer sits at the end), dropping an example whose
    final answer would not fit whole after at least one prompt token; ``drop`` drops every long example; ``error`` raises.

    Raises:
        DataError: ``too_long="error"`` and an example is longer than ``max_length``.
    """
    report = TruncationReport()
    out: list[TokenizedExample] = []
    for ex in examples:
        text, spans = assistant_spans(tokenizer, ex.as_dicts())
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = list(enc["input_ids"])
        labels = [IGNORE_INDEX] * len(ids)
        for t, (start, _end) in enumerate(enc["offset_mapping"]):
            if any(s <= start < e for s, e in spans):
                labels[t] = ids[t]
        report.longest = max(report.longest, len(ids))
        if len(ids) > max_length:
            if report.first_source is None:
                report.first_source = f"{ex.source} ({len(ids)} tokens)"
            if too_long == "error":
                raise DataError(
                    f"{ex.source}: {len(ids)} tokens, longer than max_length={max_length}; raise --max-length "
                    "or pass --too-long truncate/drop"
                )
            cut = len(ids) - max_length
            cut_ids, cut_labels = ids[cut:], labels[cut:]
            # the last answer must survive whole, with some of its prompt before it
            if too_long == "drop" or _answer_start(labels) <= cut:
                report.dropped += 1
                continue
            report.truncated += 1
            ids, labels = cut_ids, cut_labels
        if all(x == IGNORE_INDEX for x in labels):
            raise DataError(f"{ex.source}: no assistant tokens after tokenization (is the answer empty?)")
        out.append(TokenizedExample(input_ids=ids, labels=labels, source=ex.source))
    return out, report


def _answer_start(labels: Sequence[int]) -> int:
    """Index of the first token of the last labelled run (the final answer)."""
    i = len(labels) - 1
    while i >= 0 and labels[i] == IGNORE_INDEX:
        i -= 1
    while i >= 0 and labels[i] != IGNORE_INDEX:
        i -= 1
    return i + 1


# ------------------------------------------------------------------------------------------------- batching


def epoch_batches(lengths: Sequence[int], micro_batch: int, seed: int, epoch: int) -> list[list[int]]:
    """The micro-batches of one epoch: shuffled, then grouped by length so padding stays small.

    Examples are shuffled, cut into pools of 32 micro-batches, sorted by length inside a pool and split into
    micro-batches, and the micro-batches are shuffled again. The order depends only on (seed, epoch), which is
    what makes ``--resume`` continue with the same data order.
    """
    n = len(lengths)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n).tolist()
    pool = micro_batch * 32
    batches: list[list[int]] = []
    for p in range(0, n, pool):
        chunk = sorted(order[p : p + pool], key=lambda i: lengths[i])
        batches.extend(chunk[b : b + micro_batch] for b in range(0, len(chunk), micro_batch))
    perm = rng.permutation(len(batches)).tolist()
    return [batches[i] for i in perm]


def steps_per_epoch(n_examples: int, micro_batch: int, accumulation: int) -> int:
    return math.ceil(math.ceil(n_examples / micro_batch) / accumulation)
