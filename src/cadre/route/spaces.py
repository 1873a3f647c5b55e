"""The embedding spaces a router is cross-fitted in: the encoder's form under a latency budget, and per-fold
fine-tuned encoders.

**Latency budget** (``RouterSpec.latency_budget_ms``): every form in ``FORMS`` (runtime x precision x sequence
length; the onnx ones when ONNX Runtime is installed) of the embedding model is timed on single requests drawn
from the examples (one thread, several interleaved rounds, the median of each form's p99); the forms within the
budget are cross-fitted like the heads are, and the
most accurate wins (ties: the less lossy form, earlier in ``FORMS``). The form is chosen on the frozen encoder and
then applied to whichever encoder (frozen or fine-tuned) the fit keeps: they share the architecture, so the same
timings hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cadre.errors import ConfigError
from cadre.route.config import RouterSpec
from cadre.route.crossfit import CrossFit, FoldSpace
from cadre.route.encoders import EncoderForm, base_model_id
from cadre.route.protocol import Embedder

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "FORMS",
    "choose_form",
    "embed_texts",
    "encoder_path",
    "finetune_space",
    "finetuned_embedder",
    "measure_latency",
    "n_pairs",
]

FORMS: tuple[EncoderForm, ...] = (
    EncoderForm("torch", "fp32"),
    EncoderForm("onnx", "fp32"),
    EncoderForm("onnx", "fp32", 64),
    EncoderForm("torch", "int8"),
    EncoderForm("onnx", "int8"),
    EncoderForm("onnx", "int8", 64),
)
"""Encoder forms a latency budget chooses between, least lossy first (onnx fp32 = torch fp32's numbers)."""


def embed_texts(embedder: Embedder, texts: Sequence[str], *, progress: bool) -> NDArray[np.float32]:
    """Embed ``texts`` in batches of 64, with a progress bar for large sets when ``progress``."""
    batch = 64
    if not progress or len(texts) <= 4 * batch:
        return np.asarray(embedder.encode(list(texts), batch_size=batch), dtype=np.float32)
    from rich.progress import Progress

    parts = []
    with Progress(transient=True) as bar:
        task = bar.add_task("embedding examples", total=len(texts))
        for i in range(0, len(texts), 4 * batch):
            chunk = list(texts[i : i + 4 * batch])
            parts.append(np.asarray(embedder.encode(chunk, batch_size=batch), dtype=np.float32))
            bar.advance(task, len(chunk))
    return np.concatenate(parts)


def measure_latency(
    route_one: Callable[[Any], Any], texts: Sequence[Any], *, rounds: int = 1, warmup: int = 5
) -> dict[str, float]:
    """p50 / p99 (ms) of ``route_one(item)`` one item at a time, on one torch thread (medians over rounds)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for t in texts[:warmup]:
            route_one(t)
        p50, p99 = [], []
        for _ in range(rounds):
            ms = []
            for t in texts:
                t0 = time.perf_counter()
                route_one(t)
                ms.append((time.perf_counter() - t0) * 1000.0)
            p50.append(float(np.percentile(ms, 50)))
            p99.append(float(np.percentile(ms, 99)))
    finally:
        torch.set_num_threads(threads)
    return {"p50_ms": float(np.median(p50)), "p99_ms": float(np.median(p99))}


def choose_form(
    spec: RouterSpec,
    embedder: Embedder,
    texts: list[str],
    *,
    own_rows: NDArray[np.float32],
    n_in: int,
    folds: int,
    cross_fit_space: Callable[[FoldSpace], CrossFit],
    candidates: Sequence[EncoderForm] = FORMS,
    timing_texts: int = 100,
    rounds: int = 3,
) -> tuple[RouterSpec, Embedder, NDArray[np.float32], dict[str, Any]]:
    """The most accurate encoder form whose measured p99 fits ``spec.latency_budget_ms``.

    Args:
        embedder: the embedder of ``spec``'s own form, ``own_rows`` its embeddings of ``texts``.
        texts: every example text, in-scope first (``n_in`` of them), then out-of-scope.
        cross_fit_space: cross-fits the heads in a frozen space (``folds`` copies) and returns the result.

    Returns:
        The spec with the chosen form, its embedder, its embeddings of ``texts``, and the report.

    Raises:
        ConfigError: no form meets the budget (the message names the fastest measured p99).
    """
    from cadre.route.encoders import get_route_embedder
    from cadre.route.onnx_encoder import onnx_available

    budget = float(spec.latency_budget_ms or 0.0)
    own = EncoderForm.of(spec)
    usable = [f for f in candidates if f.runtime != "onnx" or onnx_available()]
    forms = list(dict.fromkeys([own, *usable]))
    embedders = {f: embedder if f == own else get_route_embedder(spec.embedding_model, f) for f in forms}
    expected = get_route_embedder(spec.embedding_model, own).model_id
    if embedder.model_id != expected:
        raise ConfigError(
            f"latency_budget_ms times the forms of the spec's embedding model ({expected}), not the "
            f"embedder passed in ({embedder.model_id}); drop one of them"
        )
    rng = np.random.default_rng(spec.seed)
    sample = [texts[i] for i in rng.permutation(len(texts))[:timing_texts]]
    timings: dict[EncoderForm, list[dict[str, float]]] = {f: [] for f in forms}
    for _ in range(rounds):  # interleaved, so that a busy moment of the machine hits every form alike
        for f in forms:
            timer = embedders[f] if f != own else get_route_embedder(spec.embedding_model, f)
            timings[f].append(measure_latency(timer.encode, [[t] for t in sample]))
    table: dict[str, dict[str, Any]] = {
        f.name: {k: float(np.median([m[k] for m in timings[f]])) for k in ("p50_ms", "p99_ms")} for f in forms
    }
    within = [f for f in forms if table[f.name]["p99_ms"] <= budget]
    if not within:
        fastest = min(forms, key=lambda f: table[f.name]["p99_ms"])
        raise ConfigError(
            f"no encoder form meets latency_budget_ms={budget:g} on this machine: the fastest, {fastest.name}, "
            f"measured p99 {table[fastest.name]['p99_ms']:.1f} ms per request (one thread, embedding only); "
            "raise the budget or route on a faster machine"
        )
    best: tuple[float, int] | None = None
    chosen, chosen_x = within[0], own_rows
    for f in within:
        x_all = own_rows if f == own else embed_texts(embedders[f], texts, progress=False)
        cf = cross_fit_space(FoldSpace(xs=[x_all[:n_in]] * folds, xos=[x_all[n_in:]] * folds))
        acc = cf.accuracy[cf.chosen]
        table[f.name]["cv_accuracy"] = acc
        key = (acc, -FORMS.index(f) if f in FORMS else 1)  # ties: the asked-for form, then the less lossy
        if best is None or key > best:
            best, chosen, chosen_x = key, f, x_all
    report = {
        "budget_ms": budget,
        "chosen": chosen.name,
        "forms": table,
        "measured_on": f"{len(sample)} example texts one at a time, one thread, median of {rounds} rounds",
    }
    new_spec = spec.model_copy(
        update={
            "embedding_runtime": chosen.runtime,
            "embedding_precision": chosen.precision,
            "max_seq_length": chosen.max_seq_length,
        }
    )
    return new_spec, embedders[chosen], chosen_x, report


def finetune_space(
    base: Embedder,
    spec: RouterSpec,
    texts: list[str],
    oos_texts: list[str],
    y: NDArray[np.int64],
    fold: NDArray[np.int64],
    out_fold: NDArray[np.int64],
) -> FoldSpace:
    """Per fold, fine-tune without that fold and embed every example with the result."""
    from cadre.route.finetune import finetune_encoder

    path = encoder_path(spec)
    xs, xos = [], []
    for f in range(int(fold.max()) + 1):
        tr, otr = fold != f, out_fold != f
        model = finetune_encoder(
            path,
            [t for t, keep in zip(texts, tr) if keep] + [t for t, keep in zip(oos_texts, otr) if keep],
            np.r_[y[tr], np.full(int(otr.sum()), int(y.max()) + 1)].astype(np.int64),
            n_pairs=n_pairs(spec, int(tr.sum() + otr.sum())),
            epochs=spec.finetune_epochs,
            seed=spec.seed + f,
        )
        emb = finetuned_embedder(model, base, spec)
        x_all = embed_texts(emb, texts + oos_texts, progress=False)
        xs.append(x_all[: len(texts)])
        xos.append(x_all[len(texts) :])
    return FoldSpace(xs=xs, xos=xos)


def n_pairs(spec: RouterSpec, n: int) -> int:
    """The fine-tuning pair budget for ``n`` examples."""
    return int(min(spec.finetune_pairs, 40 * n))  # SetFit's default: 20 iterations x (1 same + 1 other) pairs


def encoder_path(spec: RouterSpec) -> str:
    """The folder of the embedding model ``spec`` names (the bundled MiniLM by default)."""
    from cadre.runtime.bundled import bundled_model_path, get_bundled
    from cadre.runtime.embeddings import DEFAULT_EMBEDDER

    name = spec.embedding_model or DEFAULT_EMBEDDER
    return str(bundled_model_path(name) if get_bundled(name) is not None else Path(name).expanduser())


def finetuned_embedder(model: Any, base: Embedder, spec: RouterSpec) -> Embedder:
    """The fine-tuned ``model`` in ``spec``'s form; its id is the base id + its weights' digest + the form."""
    from cadre.route.finetune import finetuned_id, wrap

    form = EncoderForm.of(spec)
    base_id = base_model_id(base.model_id, form)
    return wrap(model, finetuned_id(base_id, model), form)
