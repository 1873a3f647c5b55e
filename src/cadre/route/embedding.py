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
from pydantic import ValidationError

from cadre.errors import DataError, ModelLoadError
from cadre.route.config import RouterSpec
from cadre.route.crossfit import CrossFit, FoldSpace, cross_fit, fold_ids
from cadre.route.data import Example, check_examples, routes_of
from cadre.route.ood import (
    FEATURES,
    GateView,
    Mahalanobis,
    OODGate,
    choose_alpha,
    energy,
    fit_gate,
    route_similarity,
    score_features,
)
from cadre.route.protocol import GENERALIST, Embedder, RouteDecision
from cadre.route.spaces import (
    choose_form,
    embed_texts,
    encoder_path,
    finetune_space,
    finetuned_embedder,
    n_pairs,
)
from cadre.route.strategies.base import Explanation, Head, Neighbor, softmax
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
    from cadre.route.encoders import EncoderForm, get_route_embedder

    spec = spec or RouterSpec()
    return get_route_embedder(spec.embedding_model, EncoderForm.of(spec))


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
        maha: Mahalanobis | None = None,
        encoder_model: Any = None,
        gate_head: Head | None = None,
        gate_view: GateView | None = None,
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
        self.maha = maha  # None for routers saved before the Mahalanobis score existed
        self.encoder_model = (
            encoder_model  # the fine-tuned sentence-transformers model, saved with the router
        )
        # energy comes from a head fitted without fold 0, like the heads its calibration scores came from (the
        # final head has larger logits: its energies would sit above the calibration's, keeping too much)
        self.gate_head = gate_head
        self.gate_view = gate_view if gate_head is not None else None
        v = self.gate_view
        self._gate_bank = bank if v is None else bank[v.bank_mask]
        self._gate_labels = bank_labels if v is None else bank_labels[v.bank_mask]
        self._gate_ood = ood_bank if v is None or not len(ood_bank) else ood_bank[v.ood_mask]

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    # ---- scoring -----------------------------------------------------------------------------------
    def _features(self, x: NDArray[np.float32], probs: NDArray[np.float64]) -> NDArray[np.float64]:
        """(n, len(FEATURES)) gate features of embedded requests, in the gate's view (see ``GateView``)."""
        gate_logits = (self.gate_head or self.head).logits(x)
        maha = self.maha
        if self.gate_view is not None:
            probs = softmax(gate_logits / self.temperature)
            maha = self.gate_view.maha
        feats = np.zeros((x.shape[0], len(FEATURES)), dtype=np.float64)
        feats[:, 0] = route_similarity(
            x @ self._gate_bank.T, self._gate_labels, len(self.routes), self.gate.k
        )
        feats[:, 1] = probs.max(axis=1)
        if self._gate_ood.shape[0]:
            feats[:, 2] = (x @ self._gate_ood.T).max(axis=1)
        if maha is not None:
            feats[:, 3] = maha.score(x)
        feats[:, 4] = energy(gate_logits)
        return feats

    def decide(self, x: NDArray[np.float32], *, seconds: float = 0.0) -> list[RouteDecision]:
        """Decisions for already-embedded requests (rows of unit length)."""
        probs = softmax(self.head.logits(x) / self.temperature)
        feats = self._features(x, probs)
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
        feats = self._features(x, probs)
        details = {
            "strategy": self.kind,
            "features": {name: float(v) for name, v in zip(FEATURES, feats[0])},
            "in_domain_p_value": float(self.gate.p_values(self.gate.score(feats), probs.argmax(axis=1))[0]),
            "ood_alpha": self.gate.alpha,
            "ood_score": self.report.get("ood_score", FEATURES[0]),
            "threshold": self.report.get("threshold", {"target": f"ood_alpha={self.gate.alpha}"}),
            "encoder": self.report.get("encoder", {}).get("chosen", "frozen"),
            "embedding_model": self.embedder.model_id,
            "latency": self.report.get("latency"),
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
        gate_head_params = None
        if self.gate_head is not None:
            gate_arrays, gate_head_params = self.gate_head.state()
            arrays.update({f"gate_head.{k}": np.ascontiguousarray(v) for k, v in gate_arrays.items()})
        arrays["bank_labels"] = self.bank_labels.astype(np.int64)
        arrays["calib"] = self.gate.calib.astype(np.float64)
        if self.gate.calib_labels is not None:
            arrays["calib_labels"] = self.gate.calib_labels.astype(np.int64)
        if self.ood_bank.shape[0]:
            arrays["ood_bank"] = np.ascontiguousarray(self.ood_bank)
        if self.maha is not None:
            arrays.update({k: np.ascontiguousarray(v) for k, v in self.maha.state().items()})
        if self.gate_view is not None:
            arrays.update({k: np.ascontiguousarray(v) for k, v in self.gate_view.state().items()})
        encoder: dict[str, Any] = {"kind": "frozen"}
        if self.encoder_model is not None:
            from cadre.route.finetune import ENCODER_DIR, save_encoder

            save_encoder(self.encoder_model, directory)
            from cadre.route.encoders import EncoderForm, base_model_id

            ft_id = base_model_id(self.embedder.model_id, EncoderForm.of(self.spec))
            encoder = {"kind": "finetuned", "path": ENCODER_DIR, "model_id": ft_id}
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
            "encoder": encoder,
            "dim": int(self.bank.shape[1]),
            "routes": self.routes,
            "spec": self.spec.model_dump(mode="json"),
            "temperature": self.temperature,
            "ood": self.gate.params(),
            "head": head_params,
            "gate_head": gate_head_params,
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

        try:
            spec = RouterSpec.model_validate(manifest["spec"])
        except ValidationError as err:
            raise ModelLoadError(
                f"router {directory}: its settings are not valid for this cadre ({err.errors()[0]['msg']}); "
                f"refit it: cadre route fit --data FILE --out {directory}"
            ) from None
        encoder = manifest.get("encoder") or {"kind": "frozen"}
        if embedder is not None:
            emb = embedder
        elif encoder.get("kind") == "finetuned":
            from cadre.route.encoders import EncoderForm
            from cadre.route.finetune import load_finetuned

            emb = load_finetuned(directory, str(encoder["model_id"]), EncoderForm.of(spec))
        else:
            emb = default_embedder(spec)
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
        gate_arrays = {k[10:]: v for k, v in arrays.items() if k.startswith("gate_head.")}
        gate_head = None
        if gate_arrays:
            gate_head = self.head_cls.from_state(gate_arrays, manifest.get("gate_head") or {}, spec)
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
            maha=Mahalanobis(arrays["maha.means"], arrays["maha.precision"])
            if "maha.means" in arrays
            else None,
            gate_head=gate_head,
            gate_view=GateView.from_state(arrays),
        )


def fit_embedding_router(
    examples: Sequence[Example],
    *,
    spec: RouterSpec,
    embedder: Embedder | None,
    candidates: dict[str, HeadKind],
    progress: bool = False,
) -> EmbeddingRouter:
    """Cross-fit every candidate head (and encoder), keep the best by out-of-fold accuracy, calibrate, refit."""
    kept, dropped = check_examples(examples, min_per_route=spec.min_examples_per_route)
    emb = embedder if embedder is not None else default_embedder(spec)
    routes = routes_of(kept)
    ind = [ex for ex in kept if ex.route is not None]
    oos = [ex for ex in kept if ex.route is None]
    texts, oos_texts = [ex.text for ex in ind], [ex.text for ex in oos]
    x_all = embed_texts(emb, texts + oos_texts, progress=progress)
    x, xo = x_all[: len(ind)], x_all[len(ind) :]
    y = np.array([routes.index(ex.route) for ex in ind if ex.route is not None], dtype=np.int64)
    n_routes = len(routes)
    encoders = {"frozen": ["frozen"], "finetuned": ["finetuned"], "auto": ["frozen", "finetuned"]}[
        spec.encoder
    ]
    n_folds = spec.finetune_folds if "finetuned" in encoders else spec.folds
    folds = max(2, min(n_folds, int(np.bincount(y).min())))
    fold = fold_ids(y, folds, spec.seed)
    out_fold = fold_ids(np.zeros(len(xo), dtype=np.int64), folds, spec.seed)
    latency: dict[str, Any] | None = None
    if spec.latency_budget_ms is not None:
        asked = spec
        spec, emb, x_all, latency = choose_form(
            asked,
            emb,
            texts + oos_texts,
            own_rows=x_all,
            n_in=len(ind),
            folds=folds,
            cross_fit_space=lambda sp: cross_fit(
                sp, y, fold, out_fold, candidates=candidates, spec=asked, n_routes=n_routes
            ),
        )
        x, xo = x_all[: len(ind)], x_all[len(ind) :]

    fits: dict[str, CrossFit] = {}
    fit_seconds: dict[str, float] = {}
    for enc in encoders:
        t0 = time.perf_counter()
        if enc == "frozen":
            space = FoldSpace(xs=[x] * folds, xos=[xo] * folds)
        else:
            space = finetune_space(emb, spec, texts, oos_texts, y, fold, out_fold)
        fits[enc] = cross_fit(space, y, fold, out_fold, candidates=candidates, spec=spec, n_routes=n_routes)
        fit_seconds[enc] = time.perf_counter() - t0
    enc_acc = {e: cf.accuracy[cf.chosen] for e, cf in fits.items()}
    encoder = max(encoders, key=lambda e: (enc_acc[e], -encoders.index(e)))  # ties: frozen
    cf = fits[encoder]
    encoder_model = None
    if encoder == "finetuned":
        from cadre.route.finetune import finetune_encoder

        encoder_model = finetune_encoder(
            encoder_path(spec),
            texts + oos_texts,
            np.r_[y, np.full(len(oos_texts), n_routes)].astype(np.int64),
            n_pairs=n_pairs(spec, len(texts) + len(oos_texts)),
            epochs=spec.finetune_epochs,
            seed=spec.seed,
        )
        emb = finetuned_embedder(encoder_model, emb, spec)
        x_all = embed_texts(emb, texts + oos_texts, progress=progress)
        x, xo = x_all[: len(ind)], x_all[len(ind) :]

    head = candidates[cf.chosen].head_cls(spec)
    head.fit(x, y, n_routes)
    pred = cf.probs.argmax(axis=1)
    gate = fit_gate(
        cf.in_feats,
        cf.out_feats,
        in_labels=pred,
        alpha=spec.ood_alpha,
        k=spec.k,
        score=score_features(cf.ood_score),
        seed=spec.seed,
    )
    threshold: dict[str, Any] = {"target": f"ood_alpha={spec.ood_alpha}", "ood_alpha": gate.alpha}
    if spec.ood_alpha is not None and gate.alpha != spec.ood_alpha:
        threshold["note"] = (
            f"ood_alpha raised to {gate.alpha:.3f}: {len(cf.in_feats)} in-domain examples cannot give conformal "
            f"p-values below it; add examples (>= {int(np.ceil(1 / spec.ood_alpha)) - 1}) to reach {spec.ood_alpha}"
        )
    if spec.min_in_scope_accuracy is not None or spec.max_generalist_share is not None:
        out_pred = None
        if cf.out_feats is not None:
            out_pred = np.zeros(len(cf.out_feats), dtype=np.int64)  # pooled calibration for these
        alpha, est = choose_alpha(
            gate,
            cf.in_feats,
            cf.out_feats,
            in_pred=pred,
            in_correct=pred == y,
            out_pred=out_pred,
            min_in_scope_accuracy=spec.min_in_scope_accuracy,
            max_generalist_share=spec.max_generalist_share,
        )
        gate = OODGate.from_params({**gate.params(), "alpha": alpha}, gate.calib, gate.calib_labels)
        target = (
            f"keep in-scope accuracy >= {spec.min_in_scope_accuracy}"
            if spec.min_in_scope_accuracy is not None
            else f"send at most {spec.max_generalist_share} to the generalist"
        )
        threshold = {"target": target, "ood_alpha": alpha, "held_out_estimate": est}

    report: dict[str, Any] = {
        "strategy": cf.chosen,
        "cv_accuracy": cf.accuracy,
        "encoder": {
            "chosen": encoder,
            "cv_accuracy": enc_acc,
            "cross_fit_seconds": fit_seconds,
            "model_id": emb.model_id,
        },
        "ood_score": cf.ood_score if cf.out_feats is None else "logistic(" + ", ".join(gate.features) + ")",
        "ood_score_loro_auroc": cf.score_auroc,
        "latency": latency,
        "threshold": threshold,
        "folds": folds,
        "temperature": cf.temperature,
        "examples": len(ind),
        "out_of_scope_examples": len(oos),
        "duplicates_dropped": dropped,
        "per_route": {r: int((y == i).sum()) for i, r in enumerate(routes)},
    }
    if cf.out_feats is not None:
        from cadre.route.evaluation import auroc

        s_in, s_out = gate.score(cf.in_feats), gate.score(cf.out_feats)
        report["cv_ood_auroc"] = auroc(
            np.concatenate([s_in, s_out]), np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
        )
    return EmbeddingRouter(
        kind=cf.chosen,
        head=head,
        routes=routes,
        embedder=emb,
        spec=spec,
        temperature=cf.temperature,
        gate=gate,
        bank=x,
        bank_labels=y,
        bank_texts=texts,
        ood_bank=xo if len(xo) else np.zeros((0, x.shape[1]), dtype=np.float32),
        ood_texts=oos_texts,
        report=report,
        maha=Mahalanobis.fit(x, y, n_routes),
        encoder_model=encoder_model,
        # fold heads live in the fold encoders' spaces: only a frozen encoder has the fold-0 view
        gate_head=cf.gate_head if encoder == "frozen" else None,
        gate_view=GateView(
            bank_mask=fold != 0,
            ood_mask=out_fold != 0,
            maha=Mahalanobis.fit(x[fold != 0], y[fold != 0], n_routes),
        )
        if encoder == "frozen"
        else None,
    )


CENTROID = HeadKind(CentroidHead)
KNN = HeadKind(KNNHead)
LINEAR = HeadKind(LinearHead)
