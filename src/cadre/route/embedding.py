"""The embedding router: MiniLM embeddings -> a head (centroid / kNN / linear) -> calibrated route, or the
generalist when the out-of-domain gate fires. Fitting cross-fits the heads so that strategy choice, temperature
and the gate are all calibrated on held-out scores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cadre.errors import DataError, ModelLoadError
from cadre.route.config import RouterSpec
from cadre.route.data import Example, check_examples, routes_of
from cadre.route.ood import FEATURES, OODGate, fit_gate, route_similarity
from cadre.route.protocol import GENERALIST, Embedder, RouteDecision
from cadre.route.strategies.base import Explanation, Head, Neighbor, log_softmax, softmax
from cadre.route.strategies.centroid import CentroidHead
from cadre.route.strategies.knn import KNNHead
from cadre.route.strategies.linear import LinearHead
from cadre.runtime.protocol import ChatMessage

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "CENTROID",
    "FORMAT_VERSION",
    "KNN",
    "LINEAR",
    "EmbeddingRouter",
    "HeadKind",
    "default_embedder",
    "fit_embedding_router",
]

FORMAT_VERSION = 1
ARRAYS_FILE = "arrays.safetensors"
EXAMPLES_FILE = "examples.jsonl"
MANIFEST_FILE = "router.json"

HeadFactory = Callable[[RouterSpec], Head]


def default_embedder(spec: RouterSpec | None = None) -> Embedder:
    """The embedder ``spec`` names (default: the bundled all-MiniLM-L6-v2 at fp32, shared per process)."""
    from cadre.route.encoders import get_route_embedder

    spec = spec or RouterSpec()
    return get_route_embedder(spec.embedding_model, precision=spec.embedding_precision)


def _embed(embedder: Embedder, texts: Sequence[str], *, progress: bool) -> NDArray[np.float32]:
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


def _fold_ids(y: NDArray[np.int64], folds: int, seed: int) -> NDArray[np.int64]:
    """Stratified fold assignment: each route's examples are shuffled and dealt round-robin."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(y), dtype=np.int64)
    for r in np.unique(y):
        idx = np.flatnonzero(y == r)
        rng.shuffle(idx)
        out[idx] = np.arange(len(idx)) % folds
    return out


def _fit_temperature(logits: NDArray[np.float64], y: NDArray[np.int64], *, smoothing: float = 0.01) -> float:
    """Temperature scaling (Guo et al. 2017): the T minimising held-out NLL of softmax(logits / T).

    The targets are label-smoothed (1 - eps on the true route), so that a head with no held-out mistakes still
    gets a finite temperature instead of probabilities of exactly 0 and 1.
    """
    n_routes = logits.shape[1]
    if n_routes == 1:
        return 1.0
    target = np.full(logits.shape, smoothing / (n_routes - 1))
    target[np.arange(len(y)), y] = 1.0 - smoothing
    best_t, best_nll = 1.0, np.inf
    for t in np.logspace(-3, 1.5, 46):
        nll = -(target * log_softmax(logits / t)).sum(axis=1).mean()
        if nll < best_nll:
            best_t, best_nll = float(t), float(nll)
    return best_t


class EmbeddingRouter:
    """Routes by embedding the request and scoring it with a head; see the module docstring."""

    def __init__(
        self,
        *,
        kind: str,
        head: Head,
        routes: list[str],
        embedder: Embedder,
        spec: RouterSpec,
        temperature: float,
        gate: OODGate,
        bank: NDArray[np.float32],
        bank_labels: NDArray[np.int64],
        bank_texts: list[str],
        ood_bank: NDArray[np.float32],
        ood_texts: list[str],
        report: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.head = head
        self.routes = list(routes)
        self.embedder = embedder
        self.spec = spec
        self.temperature = temperature
        self.gate = gate
        self.bank = bank
        self.bank_labels = bank_labels
        self.bank_texts = bank_texts
        self.ood_bank = ood_bank
        self.ood_texts = ood_texts
        self.report: dict[str, Any] = report or {}

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    # ---- scoring -----------------------------------------------------------------------------------
    def _features(
        self, x: NDArray[np.float32], probs: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float32]]:
        sims = x @ self.bank.T  # (n, N)
        feats = np.zeros((x.shape[0], len(FEATURES)), dtype=np.float64)
        feats[:, 0] = route_similarity(sims, self.bank_labels, len(self.routes), self.gate.k)
        feats[:, 1] = probs.max(axis=1)
        if self.ood_bank.shape[0]:
            feats[:, 2] = (x @ self.ood_bank.T).max(axis=1)
        return feats, sims

    def decide(self, x: NDArray[np.float32], *, seconds: float = 0.0) -> list[RouteDecision]:
        """Decisions for already-embedded requests (rows of unit length)."""
        probs = softmax(self.head.logits(x) / self.temperature)
        feats, _ = self._features(x, probs)
        score = self.gate.score(feats)
        pval = self.gate.p_values(score, probs.argmax(axis=1))
        out_mask = self.gate.is_out(pval)
        out = []
        for i in range(x.shape[0]):
            per_route = {r: float(p) for r, p in zip(self.routes, probs[i])}
            best = int(probs[i].argmax())
            conf = float(probs[i, best])
            if out_mask[i]:
                d = RouteDecision(
                    route=GENERALIST,
                    score=float(1.0 - pval[i]),
                    reason=f"out of domain: p={pval[i]:.3f} <= alpha={self.gate.alpha}",
                    scores=per_route,
                )
            elif conf < self.spec.min_confidence:
                d = RouteDecision(
                    route=GENERALIST,
                    score=1.0 - conf,
                    reason=f"low confidence: {self.routes[best]} {conf:.2f} < {self.spec.min_confidence}",
                    scores=per_route,
                )
            else:
                d = RouteDecision(
                    route=self.routes[best],
                    score=conf,
                    reason=f"{self.kind} p={conf:.2f}; in-domain p-value {pval[i]:.3f}",
                    scores=per_route,
                )
            d.in_domain = float(score[i])
            d.seconds = seconds
            out.append(d)
        return out

    # ---- Router protocol ---------------------------------------------------------------------------
    def route(self, text: str) -> RouteDecision:
        return self.route_batch([text])[0]

    def route_batch(self, texts: Sequence[str]) -> list[RouteDecision]:
        if not texts:
            return []
        for t in texts:
            if not isinstance(t, str) or not t.strip():
                raise DataError("cannot route an empty text; send the user's message")
        t0 = time.perf_counter()
        x = np.asarray(self.embedder.encode(list(texts)), dtype=np.float32)
        decisions = self.decide(x)
        per = (time.perf_counter() - t0) / len(texts)
        for d in decisions:
            d.seconds = per
        return decisions

    def route_chat(self, messages: Sequence[ChatMessage], *, current: str | None = None) -> RouteDecision:
        """Route a conversation on its last user turn plus recent user turns, sticking to ``current``.

        The last user turn is embedded together with the ``context_turns`` user turns before it
        (``e = normalise(e_last + context_weight * e_context)``); the conversation keeps its ``current``
        specialist unless the new route reaches ``switch_confidence`` or the out-of-domain gate fires.
        """
        t0 = time.perf_counter()
        users = [
            m["content"] for m in messages if m.get("role") == "user" and str(m.get("content", "")).strip()
        ]
        if not users:
            raise DataError("route_chat needs at least one non-empty user message")
        last, earlier = users[-1], users[:-1][-self.spec.context_turns :] if self.spec.context_turns else []
        texts = [last, " ".join(earlier)] if earlier else [last]
        e = np.asarray(self.embedder.encode(texts), dtype=np.float32)
        x = e[:1]
        if earlier and self.spec.context_weight > 0:
            x = e[:1] + self.spec.context_weight * e[1:2]
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        d = self.decide(x.astype(np.float32))[0]
        unsure = d.score < self.spec.switch_confidence
        if current is not None and current in self.routes and d.route not in (current, GENERALIST) and unsure:
            kept = d.scores.get(current, 0.0)
            d = RouteDecision(
                route=current,
                score=kept,
                reason=(
                    f"sticky: stays on {current} ({d.route} p={d.score:.2f} < "
                    f"switch_confidence={self.spec.switch_confidence})"
                ),
                scores=d.scores,
                in_domain=d.in_domain,
            )
        d.seconds = time.perf_counter() - t0
        return d

    def explain(self, text: str, *, k: int = 5) -> Explanation:
        """The decision for ``text`` and its ``k`` nearest training examples (in-scope and out-of-scope)."""
        t0 = time.perf_counter()
        x = np.asarray(self.embedder.encode([text]), dtype=np.float32)
        d = self.decide(x, seconds=time.perf_counter() - t0)[0]
        sims = (x @ self.bank.T)[0]
        cands: list[tuple[float, str, str | None]] = [
            (float(s), self.bank_texts[i], self.routes[int(self.bank_labels[i])]) for i, s in enumerate(sims)
        ]
        if self.ood_bank.shape[0]:
            osims = (x @ self.ood_bank.T)[0]
            cands += [(float(s), self.ood_texts[i], None) for i, s in enumerate(osims)]
        cands.sort(key=lambda c: -c[0])
        nearest = [Neighbor(text=t, route=r, similarity=s) for s, t, r in cands[:k]]
        probs = softmax(self.head.logits(x) / self.temperature)
        feats, _ = self._features(x, probs)
        details = {
            "strategy": self.kind,
            "features": {name: float(v) for name, v in zip(FEATURES, feats[0])},
            "in_domain_p_value": float(self.gate.p_values(self.gate.score(feats), probs.argmax(axis=1))[0]),
            "ood_alpha": self.gate.alpha,
            "temperature": self.temperature,
        }
        return Explanation(decision=d, nearest=nearest, details=details)

    # ---- persistence -------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write ``router.json`` (settings, calibration), ``arrays.safetensors`` and ``examples.jsonl``."""
        from safetensors.numpy import save_file

        directory.mkdir(parents=True, exist_ok=True)
        head_arrays, head_params = self.head.state()
        arrays: dict[str, NDArray[Any]] = {
            f"head.{k}": np.ascontiguousarray(v) for k, v in head_arrays.items()
        }
        arrays["bank"] = np.ascontiguousarray(self.bank)
        arrays["bank_labels"] = self.bank_labels.astype(np.int64)
        arrays["calib"] = self.gate.calib.astype(np.float64)
        if self.gate.calib_labels is not None:
            arrays["calib_labels"] = self.gate.calib_labels.astype(np.int64)
        if self.ood_bank.shape[0]:
            arrays["ood_bank"] = np.ascontiguousarray(self.ood_bank)
        save_file(arrays, str(directory / ARRAYS_FILE))
        with (directory / EXAMPLES_FILE).open("w", encoding="utf-8") as fh:
            for t, y in zip(self.bank_texts, self.bank_labels):
                fh.write(json.dumps({"text": t, "route": self.routes[int(y)]}, ensure_ascii=False) + "\n")
            for t in self.ood_texts:
                fh.write(json.dumps({"text": t, "route": None}, ensure_ascii=False) + "\n")
        manifest = {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "embedding_model": self.embedder.model_id,
            "dim": int(self.bank.shape[1]),
            "routes": self.routes,
            "spec": self.spec.model_dump(mode="json"),
            "temperature": self.temperature,
            "ood": self.gate.params(),
            "head": head_params,
            "report": self.report,
        }
        (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


class HeadKind:
    """Registry entry for an embedding strategy: fits and loads an ``EmbeddingRouter`` with one head class."""

    def __init__(self, head_cls: Any) -> None:
        self.head_cls = head_cls
        self.name: str = head_cls.name

    def fit(
        self, examples: Sequence[Example], *, spec: RouterSpec, embedder: Embedder | None
    ) -> EmbeddingRouter:
        return fit_embedding_router(examples, spec=spec, embedder=embedder, candidates={self.name: self})

    def load(
        self, directory: Path, manifest: dict[str, Any], *, embedder: Embedder | None
    ) -> EmbeddingRouter:
        from safetensors.numpy import load_file

        spec = RouterSpec.model_validate(manifest["spec"])
        emb = embedder if embedder is not None else default_embedder(spec)
        want = manifest.get("embedding_model")
        if emb.model_id != want:
            raise ModelLoadError(
                f"router {directory} was built with embedding model {want!r} but {emb.model_id!r} is loaded; "
                f"load it with that embedder or refit it: cadre route fit --data FILE --out {directory}"
            )
        arrays_path = directory / ARRAYS_FILE
        if not arrays_path.is_file():
            raise ModelLoadError(f"router {directory} has no {ARRAYS_FILE}; refit it with `cadre route fit`")
        try:
            arrays = load_file(str(arrays_path))
        except Exception as err:  # safetensors raises its own error types for corrupt files
            raise ModelLoadError(f"cannot read {arrays_path}: {err}; refit the router") from None
        head_arrays = {k[5:]: v for k, v in arrays.items() if k.startswith("head.")}
        head = self.head_cls.from_state(head_arrays, manifest.get("head", {}), spec)
        routes = list(manifest["routes"])
        texts: list[str] = []
        ood_texts: list[str] = []
        ex_path = directory / EXAMPLES_FILE
        if ex_path.is_file():
            for raw in ex_path.read_text(encoding="utf-8").splitlines():
                obj = json.loads(raw)
                (texts if obj.get("route") is not None else ood_texts).append(obj["text"])
        bank = np.ascontiguousarray(arrays["bank"], dtype=np.float32)
        if bank.shape[1] != int(manifest.get("dim") or bank.shape[1]):
            raise ModelLoadError(
                f"router {directory}: arrays do not match router.json (dim); refit the router"
            )
        ood_bank = arrays.get("ood_bank", np.zeros((0, bank.shape[1]), dtype=np.float32))
        return EmbeddingRouter(
            kind=self.name,
            head=head,
            routes=routes,
            embedder=emb,
            spec=spec,
            temperature=float(manifest["temperature"]),
            gate=OODGate.from_params(manifest["ood"], arrays["calib"], arrays.get("calib_labels")),
            bank=bank,
            bank_labels=arrays["bank_labels"].astype(np.int64),
            bank_texts=texts or [""] * bank.shape[0],
            ood_bank=np.ascontiguousarray(ood_bank, dtype=np.float32),
            ood_texts=ood_texts or [""] * ood_bank.shape[0],
            report=dict(manifest.get("report", {})),
        )


def fit_embedding_router(
    examples: Sequence[Example],
    *,
    spec: RouterSpec,
    embedder: Embedder | None,
    candidates: dict[str, HeadKind],
    progress: bool = False,
) -> EmbeddingRouter:
    """Cross-fit every candidate head, keep the best by out-of-fold accuracy, calibrate, refit on all data."""
    kept, dropped = check_examples(examples, min_per_route=spec.min_examples_per_route)
    emb = embedder if embedder is not None else default_embedder(spec)
    routes = routes_of(kept)
    ind = [ex for ex in kept if ex.route is not None]
    oos = [ex for ex in kept if ex.route is None]
    x_all = _embed(emb, [ex.text for ex in ind] + [ex.text for ex in oos], progress=progress)
    x, xo = x_all[: len(ind)], x_all[len(ind) :]
    y = np.array([routes.index(ex.route) for ex in ind if ex.route is not None], dtype=np.int64)
    n_routes = len(routes)
    folds = max(2, min(spec.folds, int(np.bincount(y).min())))
    fold = _fold_ids(y, folds, spec.seed)

    # Out-of-fold logits of every candidate; the best accuracy wins (ties: the first listed).
    oof: dict[str, NDArray[np.float64]] = {}
    acc: dict[str, float] = {}
    for name, kind in candidates.items():
        z = np.zeros((len(y), n_routes), dtype=np.float64)
        for f in range(folds):
            tr, te = fold != f, fold == f
            head = kind.head_cls(spec)
            head.fit(x[tr], y[tr], n_routes)
            z[te] = head.logits(x[te])
        oof[name] = z
        acc[name] = float((z.argmax(axis=1) == y).mean())
    chosen = max(candidates, key=lambda n: (acc[n], -list(candidates).index(n)))
    temperature = _fit_temperature(oof[chosen], y)
    probs_oof = softmax(oof[chosen] / temperature)

    # Out-of-fold gate features for in-domain examples.
    in_feats = np.zeros((len(y), len(FEATURES)), dtype=np.float64)
    for f in range(folds):
        tr, te = fold != f, fold == f
        in_feats[te, 0] = route_similarity(x[te] @ x[tr].T, y[tr], n_routes, spec.k)
    in_feats[:, 1] = probs_oof.max(axis=1)
    if len(xo):
        in_feats[:, 2] = (x @ xo.T).max(axis=1)

    head = candidates[chosen].head_cls(spec)
    head.fit(x, y, n_routes)
    out_feats = None
    if len(xo):
        out_feats = np.zeros((len(xo), len(FEATURES)), dtype=np.float64)
        out_feats[:, 0] = route_similarity(xo @ x.T, y, n_routes, spec.k)
        out_feats[:, 1] = softmax(head.logits(xo) / temperature).max(axis=1)
        oo = xo @ xo.T
        np.fill_diagonal(oo, -1.0)  # leave-one-out: an out-of-scope example is not its own neighbour
        out_feats[:, 2] = oo.max(axis=1) if len(xo) > 1 else 0.0
    gate = fit_gate(
        in_feats,
        out_feats,
        in_labels=probs_oof.argmax(axis=1),
        alpha=spec.ood_alpha,
        k=spec.k,
        seed=spec.seed,
    )

    report: dict[str, Any] = {
        "strategy": chosen,
        "cv_accuracy": acc,
        "folds": folds,
        "temperature": temperature,
        "examples": len(ind),
        "out_of_scope_examples": len(oos),
        "duplicates_dropped": dropped,
        "per_route": {r: int((y == i).sum()) for i, r in enumerate(routes)},
    }
    if out_feats is not None:
        from cadre.route.evaluation import auroc

        s_in, s_out = gate.score(in_feats), gate.score(out_feats)
        report["cv_ood_auroc"] = auroc(
            np.concatenate([s_in, s_out]), np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
        )
    return EmbeddingRouter(
        kind=chosen,
        head=head,
        routes=routes,
        embedder=emb,
        spec=spec,
        temperature=temperature,
        gate=gate,
        bank=x,
        bank_labels=y,
        bank_texts=[ex.text for ex in ind],
        ood_bank=xo if len(xo) else np.zeros((0, x.shape[1]), dtype=np.float32),
        ood_texts=[ex.text for ex in oos],
        report=report,
    )


CENTROID = HeadKind(CentroidHead)
KNN = HeadKind(KNNHead)
LINEAR = HeadKind(LinearHead)
