"""Perturbations that should not change whether a system answers correctly (the robustness battery).

A perturbation maps an item to a new item (or None when it does not apply to that item). Some change only the
surface (casing, whitespace, typos, an irrelevant clause), so the reference answer stays; others change the
content and recompute the answer (numbers re-sampled through the task's generator, option order shuffled).
This is the GSM-Symbolic / GSM-NoOp idea (Mirzadeh et al. 2024, arXiv 2410.05229) for any task.

Built-ins (in :data:`PERTURBATIONS`): ``names``, ``noop``, ``numbers``, ``casing``, ``whitespace``, ``typos``,
``shuffle_options``. Add your own with ``PERTURBATIONS.register(name, obj)`` or the ``cadre.perturbations``
entry-point group: any object with ``name``, ``description`` and ``apply(item, ctx)``.
"""

from __future__ import annotations

import copy
import importlib
import random
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from typing import Any, Protocol, runtime_checkable

import yaml

from cadre.errors import ConfigError
from cadre.evaluate.task import Item, TaskSpec, _target_of, default_input_field
from cadre.registry import Registry

__all__ = [
    "PERTURBATIONS",
    "PerturbContext",
    "Perturbation",
    "ResampleHook",
    "get_perturbation",
    "perturb_items",
]

ResampleHook = Callable[[dict[str, Any], str, int], "dict[str, Any] | None"]
"""``hook(record, kind, seed) -> new record | None``: re-sample ``kind`` ("numbers", "names") in a templated
record and recompute its answer; None when the record cannot be re-sampled."""


@dataclass
class PerturbContext:
    """What a perturbation may need beyond the item: the task, the text field, a seed and the hooks."""

    spec: TaskSpec
    seed: int = 0
    resample: ResampleHook | None = None
    clauses: Sequence[str] = ()
    names: Sequence[str] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_field(self) -> str:
        return default_input_field(self.spec)

    def rng(self, perturbation: str, item: Item) -> random.Random:
        return random.Random(f"cadre.perturb:{perturbation}:{item.id}:{self.seed}")


@runtime_checkable
class Perturbation(Protocol):
    name: str
    description: str
    changes_answer: bool  # True when the reference may change (it is recomputed)

    def apply(self, item: Item, ctx: PerturbContext) -> Item | None: ...


PERTURBATIONS: Registry[Perturbation] = Registry("perturbations")


@lru_cache(maxsize=1)
def _word_lists() -> dict[str, list[str]]:
    text = files("cadre.evaluate").joinpath("data/perturb.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return {"names": list(data["names"]), "noop_clauses": list(data["noop_clauses"])}


def _with_text(item: Item, ctx: PerturbContext, text: str, name: str, **notes: Any) -> Item:
    rec = copy.deepcopy(item.record)
    rec[ctx.input_field] = text
    return Item(
        id=item.id,
        record=rec,
        target=item.target,
        perturbation=name,
        original_id=item.id,
        notes=notes,
    )


def _protected_words(target: Any) -> set[str]:
    """Words of the reference answer: noise must not touch them, or the right answer would change."""
    if isinstance(target, dict):
        text = " ".join(str(v) for v in target.values())
    elif isinstance(target, list):
        text = " ".join(str(v) for v in target)
    else:
        text = str(target)
    return {w.strip(string.punctuation).casefold() for w in text.split() if w.strip(string.punctuation)}


def _safe_word(word: str, protected: set[str]) -> bool:
    core = word.strip(string.punctuation)
    return bool(core) and core.isalpha() and core.casefold() not in protected


class _Resampled:
    """Re-sample part of a templated record through the task's hook and recompute the answer."""

    changes_answer = True

    def __init__(self, name: str, kind: str, description: str) -> None:
        self.name = name
        self.kind = kind
        self.description = description

    def apply(self, item: Item, ctx: PerturbContext) -> Item | None:
        if ctx.resample is None:
            return None
        new = ctx.resample(copy.deepcopy(item.record), self.kind, ctx.seed)
        if new is None:
            return None
        new = {**new, **({ctx.spec.id_field: item.id} if ctx.spec.id_field else {})}
        try:
            target = _target_of(new, ctx.spec, f"{self.name} of item {item.id}")
        except Exception:  # a hook that does not recompute the answer cannot be used
            return None
        return Item(id=item.id, record=new, target=target, perturbation=self.name, original_id=item.id)


class NameSubstitution:
    """Swap people's names: through the task's re-sampling hook when it has one, else in the text (and the
    reference, so an answer that contains the name stays right)."""

    name = "names"
    description = "people's names replaced by other names"
    changes_answer = True

    def apply(self, item: Item, ctx: PerturbContext) -> Item | None:
        via_hook = _Resampled(self.name, "names", self.description).apply(item, ctx)
        if via_hook is not None:
            return via_hook
        names = list(ctx.names or _word_lists()["names"])
        text = str(item.record.get(ctx.input_field, ""))
        pattern = re.compile(
            r"\b(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")\b"
        )
        found = sorted(set(pattern.findall(text)))
        if not found:
            return None
        rng = ctx.rng(self.name, item)
        pool = [n for n in names if n not in found and n not in text]
        mapping: dict[str, str] = dict(zip(found, rng.sample(pool, len(found))))

        def sub(s: str) -> str:
            return pattern.sub(lambda m: mapping.get(m.group(1)) or m.group(1), s)

        out = _with_text(item, ctx, sub(text), self.name, mapping=mapping)
        if isinstance(item.target, str):
            out.target = sub(item.target)
        elif isinstance(item.target, dict):
            out.target = {k: sub(v) if isinstance(v, str) else v for k, v in item.target.items()}
        out.record[ctx.spec.target_field] = out.target
        return out


class IrrelevantClause:
    """Insert one seemingly relevant clause that changes nothing (GSM-NoOp)."""

    name = "noop"
    description = "an irrelevant but plausible clause inserted"
    changes_answer = False

    def apply(self, item: Item, ctx: PerturbContext) -> Item | None:
        clauses = list(ctx.clauses or ctx.spec.noop_clauses or _word_lists()["noop_clauses"])
        text = str(item.record.get(ctx.input_field, ""))
        if not text.strip():
            return None
        rng = ctx.rng(self.name, item)
        clause = rng.choice(clauses)
        # After a sentence end when there is one (keeps the request intact), else appended.
        ends = [m.end() for m in re.finditer(r"[.!?](\s+|$)", text)]
        if ends and ends[0] < len(text.rstrip()):
            pos = rng.choice([e for e in ends if e < len(text.rstrip())])
            new = text[:pos] + clause + " " + text[pos:]
        else:
            sep = "" if text.rstrip().endswith((".", "!", "?")) else "."
            new = text.rstrip() + sep + " " + clause
        return _with_text(item, ctx, new, self.name, clause=clause)


class CasingNoise:
    name = "casing"
    description = "text lower-cased, upper-cased or with random word casing"
    changes_answer = False

    def apply(self, item: Item, ctx: PerturbContext) -> Item | None:
        text = str(item.record.get(ctx.input_field, ""))
        rng = ctx.rng(self.name, item)
        mode = rng.choice(("lower", "upper", "words"))
        if mode == "lower":
            new = text.lower()
        elif mode == "upper":
            new = text.upper()
        else:
            new = " ".join(w.upper() if rng.random() < 0.3 else w.lower() for w in text.split(" "))
        if new == text:
            new = text.swapcase()
        return _with_text(item, ctx, new, self.name, mode=mode)


class WhitespaceNoise:
    name = "whitespace"
    description = "extra spaces, tabs and line breaks between words"
    changes_answer = False

    def apply(self, item: Item, ctx: PerturbContext) -> Item | None:
        words = str(item.record.get(ctx.input_field, "")).split()
        if len(words) < 2:
            return None
        rng = ctx.rng(self.name, item)
        seps = [
            rng.choice(("  ", "   ", "\t", "\n", " \n ")) if rng.random() < 0.35 else " " for _ in words[1:]
        ]
        if all(s == " " for s in seps):
            seps[rng.randrange(len(seps))] = "  "
        new = "  " + words[0] + "".join(s + w for s, w in zip(seps, words[1:])) + " \n"
        return _with_text(item, ctx, new, self.name)


class TypoNoise:
    """Keyboard-style typos in about one word in six, never in words of the reference answer."""

    name = "typos"
    description = "typos (swapped, dropped or doubled letters) in some words"
    changes_answer = False

    def __init__(self, rate: float = 1 / 6) -> None:
        self.rate = rate

    @staticmethod
    def _typo(word: str, rng: random.Random) -> str:
        for _ in range(8):  # swapping two equal letters changes nothing: try again
            i = rng.randrange(1, len(word) - 1)
            op = rng.choice(("swap", "drop", "double"))
            if op == "swap":
                new = word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]
            elif op == "drop":
                new = word[:i] + word[i + 1 :]
            else:
                new = word[:i] + word[i] + word[i:]
            if new != word:
                return new
        return word[:-1]

    def apply(self, item: Item, ctx: PerturbContext) -> Item | None:
        text = str(item.record.get(ctx.input_field, ""))
        protected = _protected_words(item.target)
        words = text.split(" ")
        candidates = [
            i
            for i, w in enumerate(words)
            if len(w.strip(string.punctuation)) >= 4 and _safe_word(w, protected)
        ]
        if not candidates:
            return None
        rng = ctx.rng(self.name, item)
        k = max(1, round(len(candidates) * self.rate))
        for i in rng.sample(candidates, k):
            w = words[i]
            lead = len(w) - len(w.lstrip(string.punctuation))
            core = w.strip(string.punctuation)
            words[i] = w[:lead] + self._typo(core, rng) + w[lead + len(core) :]
        return _with_text(item, ctx, " ".join(words), self.name, typos=k)


class OptionShuffle:
    """Permute the options of a multiple-choice item; a letter answer follows its option."""

    name = "shuffle_options"
    description = "multiple-choice options in another order"
    changes_answer = True

    def apply(self, item: Item, ctx: PerturbContext) -> Item | None:
        field_name = ctx.spec.options_field
        if not field_name or not isinstance(item.record.get(field_name), list):
            return None
        options = list(item.record[field_name])
        if len(options) < 2:
            return None
        rng = ctx.rng(self.name, item)
        order = list(range(len(options)))
        while order == list(range(len(options))):
            rng.shuffle(order)
        rec = copy.deepcopy(item.record)
        rec[field_name] = [options[j] for j in order]
        target = item.target
        letter = str(target).strip().upper()
        if len(letter) == 1 and 0 <= ord(letter) - ord("A") < len(options):
            old = ord(letter) - ord("A")
            target = chr(ord("A") + order.index(old))
        rec[ctx.spec.target_field] = target
        return Item(
            id=item.id,
            record=rec,
            target=target,
            perturbation=self.name,
            original_id=item.id,
            notes={"order": order},
        )


for _p in (
    NameSubstitution(),
    IrrelevantClause(),
    _Resampled("numbers", "numbers", "numbers re-sampled and the answer recomputed (GSM-Symbolic)"),
    CasingNoise(),
    WhitespaceNoise(),
    TypoNoise(),
    OptionShuffle(),
):
    PERTURBATIONS.register(_p.name, _p)


def get_perturbation(name: str) -> Perturbation:
    p = PERTURBATIONS.get(name)
    if not isinstance(p, Perturbation):
        raise ConfigError(f"perturbation {name!r} does not implement name, description and apply(item, ctx)")
    return p


def synth_resample_hook(record: dict[str, Any], kind: str, seed: int) -> dict[str, Any] | None:
    """Re-sample through the ``cadre.synth`` generator that produced the record (named by its ``task``)."""
    task = record.get("task")
    if not isinstance(task, str) or "fields" not in record:
        return None
    try:
        synth = importlib.import_module("cadre.synth")
        gen = synth.get_generator(task)
    except Exception:  # not a synth record, or synth unavailable: the perturbation does not apply
        return None
    if kind not in getattr(gen, "resample_kinds", ()):
        return None
    new = synth.perturb_record(gen, record, kind, seed=seed)
    return dict(new)


def load_hook(path: str) -> ResampleHook:
    """Import ``module:function`` for ``resample_hook:``."""
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ConfigError(f"resample_hook {path!r}: write it as module:function")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"resample_hook {path!r} cannot be imported: {err}") from None
    if not callable(fn):
        raise ConfigError(f"resample_hook {path!r} is not callable")
    return fn  # type: ignore[no-any-return]


def perturb_items(
    items: Sequence[Item], names: Sequence[str], spec: TaskSpec, *, seed: int = 0
) -> dict[str, list[Item]]:
    """Apply each named perturbation to every item; items it does not apply to are left out."""
    hook = load_hook(spec.resample_hook) if spec.resample_hook else synth_resample_hook
    ctx = PerturbContext(spec=spec, seed=seed, resample=hook)
    field_name = default_input_field(spec)
    out: dict[str, list[Item]] = {}
    for name in names:
        p = get_perturbation(name)
        kept = []
        for it in items:
            new = p.apply(it, ctx)
            # a perturbation that left the item as it was (e.g. no numbers to re-sample) does not apply
            if new is None or (new.record == it.record and new.target == it.target):
                continue
            if new.record.get(field_name) == it.record.get(field_name) and p.name != "shuffle_options":
                continue
            kept.append(new)
        out[name] = kept
    return out
