"""Task specs: which data, how to prompt, how to read the answer, and how to score it.

A task is a YAML file validated as :class:`TaskSpec` (unknown keys are errors)::

    name: support-intents
    data: intents-test.jsonl          # JSONL, CSV, JSON list, or a Hugging Face `save_to_disk` folder
    target_field: label               # the reference answer
    input_field: text                 # the text perturbations act on (default: the first template field)
    prompt:
      system: "Classify the message. Answer with one of: {labels}."
      template: "Message: {text}\\nIntent:"
      few_shot: {k: 5, selection: nearest, source: intents-train.jsonl}
    extract: {kind: label}            # label | regex | json | number | text
    metric: accuracy                  # or {name: numeric_match, abs_tol: 0.01}
    generation: {max_tokens: 16}

Relative paths in a spec file are resolved against the spec file's folder.
"""

from __future__ import annotations

import contextlib
import csv
import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from cadre.config.base import StrictModel, load_spec
from cadre.config.jsonl import iter_jsonl
from cadre.errors import ConfigError, DataError, NotFoundError
from cadre.evaluate.extract import Extractor, ExtractSpec, build_extractor
from cadre.evaluate.metrics import METRICS, Metric, build_metric, normalize_label
from cadre.runtime.grammars import choice_grammar, json_grammar
from cadre.runtime.protocol import ChatMessage, SamplingParams

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "ExtractSpec",
    "FewShotSpec",
    "GenerationSpec",
    "Item",
    "MetricSpec",
    "PromptBuilder",
    "PromptSpec",
    "TaskSpec",
    "load_items",
    "load_task",
]


class FewShotSpec(StrictModel):
    """Exemplars shown before each item, as earlier user/assistant turns."""

    k: int = Field(default=0, ge=0, le=64)
    selection: Literal["fixed", "random", "nearest"] = "fixed"
    """fixed: the first k of the pool (or ``ids``); random: k drawn per item with ``seed``; nearest: the k most
    similar pool items by embedding (Medprompt's kNN few-shot)."""
    source: str | None = None
    """Pool file (JSONL/CSV/HF dir); None uses the evaluation data, never showing an item its own answer."""
    ids: list[str] | None = None
    """For ``fixed``: the exemplar ids, in order."""
    seed: int = 0
    embedder: str = "all-minilm-l6-v2"


class PromptSpec(StrictModel):
    system: str | None = None
    template: str = "{text}"
    answer_template: str | None = None
    """How an exemplar's answer is written; default: the target field (JSON for objects)."""
    few_shot: FewShotSpec = FewShotSpec()


class MetricSpec(StrictModel):
    name: str = "accuracy"
    options: dict[str, Any] = Field(default_factory=dict)


class GenerationSpec(StrictModel):
    max_tokens: int = Field(default=64, ge=1)
    temperature: float = Field(default=0.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: list[str] = Field(default_factory=list)
    seed: int = 0
    constrain: Literal["auto", "off"] = "auto"
    """auto: when ``extract.kind`` is ``label``, decode under a grammar that admits only the labels; when it is
    ``json`` with ``extract.json_schema``, under one that admits only JSON matching the schema (llama.cpp
    backends honour both; others generate freely); off: never constrain."""

    def params(
        self,
        *,
        repeat: int = 0,
        labels: Sequence[str] | None = None,
        json_schema: Mapping[str, Any] | None = None,
    ) -> SamplingParams:
        """Sampling settings; with ``labels`` (or ``json_schema``) and ``constrain: auto``, the output is limited
        to one label (or to JSON matching the schema)."""
        grammar = None
        if self.constrain == "auto":
            if labels:
                grammar = choice_grammar(labels)
            elif json_schema is not None:
                grammar = json_grammar(json_schema)
        return SamplingParams(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed + repeat,
            stop=tuple(self.stop),
            grammar=grammar,
        )


class TaskSpec(StrictModel):
    """One evaluation task (see the module docstring for an example)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    description: str = ""
    data: str
    split: str | None = None
    """For Hugging Face dataset folders with several splits."""
    id_field: str | None = "id"
    target_field: str = "answer"
    input_field: str | None = None
    options_field: str | None = None
    step_target_field: str | None = None
    """Pipelines: a record field holding each step's reference (``{step_id: reference}``); the summary then
    reports per-step accuracy for pipeline systems."""
    """Multiple choice: a list field rendered into ``{options}`` as ``A. ...``; enables option shuffling."""
    prompt: PromptSpec = PromptSpec()
    extract: ExtractSpec = ExtractSpec()
    metric: MetricSpec = MetricSpec()
    generation: GenerationSpec = GenerationSpec()
    resample_hook: str | None = None
    """``module:function(record, kind, seed) -> record | None`` that re-samples a templated item's numbers or
    names and recomputes its answer; default: the ``cadre.synth`` generator named by the record's ``task``."""
    noop_clauses: list[str] | None = None
    """Irrelevant clauses for the NoOp perturbation (default: a generic shipped list)."""
    base_dir: str | None = Field(default=None, exclude=True)

    @field_validator("metric", mode="before")
    @classmethod
    def _metric_shorthand(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"name": v}
        if isinstance(v, dict) and "name" in v and "options" not in v:
            return {"name": v["name"], "options": {k: x for k, x in v.items() if k != "name"}}
        return v

    @model_validator(mode="after")
    def _check_metric(self) -> TaskSpec:
        if self.metric.name not in METRICS:
            raise ValueError(
                f"metric: unknown metric {self.metric.name!r}; known: {', '.join(METRICS.names())}"
            )
        return self

    def path(self, p: str) -> Path:
        """A data path from the spec, relative to the spec file's folder."""
        path = Path(p).expanduser()
        if not path.is_absolute() and self.base_dir:
            path = Path(self.base_dir) / path
        return path

    def build_metric(self) -> Metric:
        return build_metric(self.metric.name, self.metric.options)

    @property
    def fingerprint(self) -> str:
        """A stable digest of everything that changes the items or the prompts (for resume checks)."""
        import hashlib

        dump = self.model_dump(mode="json", exclude={"description"})
        if dump["extract"].get("json_schema") is None:  # absent: the same digest as before the field existed
            dump["extract"].pop("json_schema", None)
        blob = json.dumps(dump, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_task(path: str | Path) -> TaskSpec:
    """Read and validate a task spec YAML; data paths are relative to its folder."""
    spec = load_spec(TaskSpec, path)
    return spec.model_copy(update={"base_dir": str(Path(path).resolve().parent)})


@dataclass
class Item:
    """One evaluation item: its record, the reference answer and (when perturbed) what changed."""

    id: str
    record: dict[str, Any]
    target: Any
    perturbation: str | None = None
    original_id: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- data files


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for lineno, row in iter_jsonl(path, fix="fix or remove that line"):
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: each line must be a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [dict(r) for r in csv.DictReader(fh)]


def _read_hf(path: Path, split: str | None) -> list[dict[str, Any]]:
    try:
        from datasets import DatasetDict, load_from_disk
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise DataError("reading a Hugging Face dataset folder needs the `datasets` package") from None
    try:
        ds = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise DataError(f"{path}: not a Hugging Face dataset saved with save_to_disk ({err})") from None
    if isinstance(ds, DatasetDict):
        if split is None:
            if len(ds) != 1:
                raise ConfigError(f"{path} has splits {', '.join(ds)}; set `split:` in the task spec")
            split = next(iter(ds))
        if split not in ds:
            raise ConfigError(f"{path} has no split {split!r}; it has {', '.join(ds)}")
        ds = ds[split]
    return [dict(r) for r in ds]


def read_data_file(path: Path, *, split: str | None = None) -> list[dict[str, Any]]:
    """Rows of a JSONL / JSON-list / CSV file or a Hugging Face dataset folder."""
    if not path.exists():
        raise NotFoundError(f"data file {str(path)!r} does not exist; check `data:` in the task spec")
    if path.is_dir():
        rows = _read_hf(path, split)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = _read_jsonl(path)
    elif path.suffix.lower() == ".csv":
        rows = _read_csv(path)
    elif path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: not valid JSON ({err.msg})") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataError(f"{path}: a .json data file must hold a list of objects")
        rows = data
    else:
        raise DataError(
            f"{path}: unknown data format {path.suffix!r}; use .jsonl, .csv, .json or a dataset folder"
        )
    if not rows:
        raise DataError(f"{path} holds no records; point `data:` at a non-empty file")
    return rows


def template_fields(template: str) -> list[str]:
    """The top-level field names a ``str.format`` template references (``{a}``, ``{b[x]}`` -> a, b)."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ConfigError(f"template {template[:60]!r} is not a valid format string: {err}") from None
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise ConfigError(
                f"template {template[:60]!r}: use named fields such as {{text}}, not {{}} or {{0}}"
            )
        base = name.split(".")[0].split("[")[0]
        if base not in names:
            names.append(base)
    return names


SPECIAL_FIELDS = ("labels", "options")
_FORMATTER = string.Formatter()


def _target_of(record: dict[str, Any], spec: TaskSpec, where: str) -> Any:
    if spec.target_field not in record:
        raise DataError(
            f"{where}: no target field {spec.target_field!r}; the record has {', '.join(sorted(record))}; "
            "set `target_field:` in the task spec"
        )
    target = record[spec.target_field]
    if isinstance(target, str) and spec.metric.name == "json_field_match" and target.strip().startswith("{"):
        with contextlib.suppress(json.JSONDecodeError):
            target = json.loads(target)
    return target


def load_items(spec: TaskSpec, *, limit: int | None = None) -> list[Item]:
    """Read the task's data, check every template field exists, and return the items (first ``limit``)."""
    path = spec.path(spec.data)
    records = read_data_file(path, split=spec.split)
    if limit is not None:
        records = records[:limit]
    needed = [f for f in template_fields(spec.prompt.template) if f not in SPECIAL_FIELDS]
    if spec.prompt.system:
        needed += [
            f for f in template_fields(spec.prompt.system) if f not in SPECIAL_FIELDS and f not in needed
        ]
    items = []
    seen: set[str] = set()
    for i, rec in enumerate(records):
        where = f"{path}: record {i + 1}"
        missing = [f for f in needed if f not in rec]
        if missing:
            raise ConfigError(
                f"the prompt template uses {', '.join('{' + m + '}' for m in missing)} but {where} has no such "
                f"field; available fields: {', '.join(sorted(rec))}"
            )
        if spec.options_field and not isinstance(rec.get(spec.options_field), list):
            raise DataError(f"{where}: options field {spec.options_field!r} must be a list")
        item_id = str(rec[spec.id_field]) if spec.id_field and rec.get(spec.id_field) is not None else str(i)
        if item_id in seen:
            raise DataError(f"{where}: duplicate id {item_id!r}; ids must be unique (or set id_field: null)")
        seen.add(item_id)
        items.append(Item(id=item_id, record=rec, target=_target_of(rec, spec, where)))
    return items


def check_label_coverage(labels: Sequence[str], items: Sequence[Item]) -> None:
    """Raise DataError when some reference answers are not in the label set (they could never be right)."""
    known = {normalize_label(label) for label in labels}
    missing: dict[str, int] = {}
    for it in items:
        if normalize_label(it.target) not in known:
            missing[str(it.target)] = missing.get(str(it.target), 0) + 1
    if missing:
        shown = ", ".join(f"{k!r} ({v} items)" for k, v in sorted(missing.items())[:8])
        raise DataError(
            f"the label set does not cover the data: {shown} not among extract.labels "
            f"({', '.join(labels)}); add them to extract.labels or fix the data"
        )


# ---------------------------------------------------------------------------------------------- prompting


def format_options(options: Sequence[Any]) -> str:
    return "\n".join(f"{chr(ord('A') + i)}. {opt}" for i, opt in enumerate(options))


class ParsedTemplate:
    """A ``str.format`` template parsed once; :meth:`format` fills it like ``template.format(**values)``."""

    def __init__(self, template: str) -> None:
        self.template = template
        self._parts = list(_FORMATTER.parse(template))

    def format(self, values: Mapping[str, Any]) -> str:
        out: list[str] = []
        for literal, name, spec, conversion in self._parts:
            out.append(literal)
            if name is None:
                continue
            value, _ = _FORMATTER.get_field(name, (), values)
            value = _FORMATTER.convert_field(value, conversion)
            if spec and "{" in spec:
                spec = _FORMATTER.vformat(spec, (), values)
            out.append(_FORMATTER.format_field(value, spec or ""))
        return "".join(out)


class PromptBuilder:
    """Turns items into chat messages: system prompt, few-shot turns, then the item."""

    def __init__(self, spec: TaskSpec, items: Sequence[Item], *, max_shots: int = 0) -> None:
        """``items``: the full evaluation data (the default exemplar pool, and where labels come from);
        ``max_shots``: the most exemplars any system will ask for (loads the pool even when the task's k is 0).
        """
        self.spec = spec
        self.labels = resolve_labels(spec, items)
        self._labels_text = ", ".join(self.labels) if self.labels else ""
        self._templates: dict[str, ParsedTemplate] = {}
        self.shots = spec.prompt.few_shot.k
        self._pool: list[Item] = []
        self._pool_vecs: np.ndarray | None = None
        self._query_cache: dict[str, np.ndarray] = {}
        if self.shots > 0 or max_shots > 0:
            fs = spec.prompt.few_shot
            if fs.source:
                self._pool = load_items(spec.model_copy(update={"data": fs.source, "split": None}))
            else:
                self._pool = list(items)
            if fs.selection == "fixed" and fs.ids:
                by_id = {it.id: it for it in self._pool}
                unknown = [i for i in fs.ids if i not in by_id]
                if unknown:
                    raise ConfigError(
                        f"prompt.few_shot.ids: {', '.join(unknown)} not found in the exemplar pool"
                    )
                self._pool = [by_id[i] for i in fs.ids]
            if len(self._pool) <= 1 and not fs.source:
                raise DataError(
                    "few-shot needs an exemplar pool: set prompt.few_shot.source or use more data"
                )

    def render(self, template: str, item: Item) -> str:
        values = dict(item.record)
        values["labels"] = self._labels_text
        if self.spec.options_field:
            values["options"] = format_options(item.record[self.spec.options_field])
        try:
            parsed = self._templates.get(template)
            if parsed is None:
                parsed = self._templates[template] = ParsedTemplate(template)
            return parsed.format(values)
        except KeyError as err:
            raise ConfigError(
                f"template field {{{err.args[0]}}} missing in item {item.id!r}; available: {', '.join(sorted(values))}"
            ) from None
        except (IndexError, AttributeError, ValueError) as err:
            raise ConfigError(f"cannot fill the template for item {item.id!r}: {err}") from None

    def answer_text(self, item: Item) -> str:
        if self.spec.prompt.answer_template:
            return self.render(self.spec.prompt.answer_template, item)
        if isinstance(item.target, dict | list):
            return json.dumps(item.target, ensure_ascii=False)
        return str(item.target)

    def input_text(self, item: Item) -> str:
        field_name = self.spec.input_field or default_input_field(self.spec)
        return str(item.record.get(field_name, ""))

    def _embed_pool(self) -> np.ndarray:
        if self._pool_vecs is None:
            from cadre.runtime.embeddings import get_embedder

            emb = get_embedder(self.spec.prompt.few_shot.embedder)
            self._pool_vecs = emb.encode([self.input_text(it) for it in self._pool])
        return self._pool_vecs

    def exemplars(self, item: Item, k: int | None = None) -> list[Item]:
        """The ``k`` few-shot exemplars for ``item`` (never the item itself or a record with the same input)."""
        k = self.shots if k is None else k
        if k == 0:
            return []
        fs = self.spec.prompt.few_shot
        key = item.original_id or item.id
        text = self.input_text(item)
        allowed = [i for i, ex in enumerate(self._pool) if ex.id != key and self.input_text(ex) != text]
        if fs.selection == "fixed":
            chosen = allowed[:k]
        elif fs.selection == "random":
            import random

            rng = random.Random(f"{fs.seed}:{key}")
            chosen = rng.sample(allowed, min(k, len(allowed)))
        else:
            import numpy as np

            pool = self._embed_pool()
            sims = pool[allowed] @ self._query_vec(text)
            order = np.argsort(-sims, kind="stable")[:k]
            # the most similar exemplar goes last, right before the question
            chosen = [allowed[int(j)] for j in order][::-1]
        return [self._pool[i] for i in chosen]

    def _query_vec(self, text: str) -> np.ndarray:
        vec = self._query_cache.get(text)
        if vec is None:
            from cadre.runtime.embeddings import get_embedder

            if len(self._query_cache) > 4096:
                self._query_cache = {}
            vec = get_embedder(self.spec.prompt.few_shot.embedder).encode(text)[0]
            self._query_cache[text] = vec
        return vec

    def messages(self, item: Item, *, shots: int | None = None) -> list[ChatMessage]:
        """System prompt, ``shots`` exemplars as user/assistant turns (default: the task's k), then the item."""
        if shots is not None and shots > 0 and not self._pool:
            raise ConfigError("few-shot prompting needs an exemplar pool; set prompt.few_shot.source")
        msgs: list[ChatMessage] = []
        if self.spec.prompt.system:
            msgs.append({"role": "system", "content": self.render(self.spec.prompt.system, item)})
        for ex in self.exemplars(item, shots):
            msgs.append({"role": "user", "content": self.render(self.spec.prompt.template, ex)})
            msgs.append({"role": "assistant", "content": self.answer_text(ex)})
        msgs.append({"role": "user", "content": self.render(self.spec.prompt.template, item)})
        return msgs


def default_input_field(spec: TaskSpec) -> str:
    """The field perturbations act on: ``input_field``, else the first field the template uses."""
    if spec.input_field:
        return spec.input_field
    for name in template_fields(spec.prompt.template):
        if name not in SPECIAL_FIELDS:
            return name
    raise ConfigError("cannot tell which field holds the input text; set `input_field:` in the task spec")


def resolve_labels(spec: TaskSpec, items: Sequence[Item]) -> list[str] | None:
    """The label set for label extraction (given, or the distinct targets), checked against the data."""
    if spec.extract.kind != "label":
        return spec.extract.labels
    if spec.extract.labels:
        check_label_coverage(spec.extract.labels, items)
        return list(spec.extract.labels)
    labels = sorted({str(it.target) for it in items})
    if not labels:
        raise DataError("no labels: the data has no targets")
    return labels


def make_extractor(spec: TaskSpec, items: Sequence[Item]) -> Extractor:
    return build_extractor(spec.extract, labels=resolve_labels(spec, items))
