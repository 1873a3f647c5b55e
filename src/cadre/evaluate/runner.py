"""Run systems on a task's items and record every answer; summarise a run directory.

A run directory holds:

- ``run.json``: the task spec, the systems, the perturbations, the item ids (written first, checked on resume);
- ``items.jsonl``: one record per (system, item, perturbation, repeat), appended and flushed as it is made:
  prediction, reference, score, correct, latency, time to first token, tokens in/out, route, error;
- ``summary.json``: metrics, latency, cost, paired comparisons and robustness, recomputed from the records.

Running again into the same directory resumes: answered records are skipped, failed ones are retried. A
system that fails (to load, or on an item) gets the error in its records and the run goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cadre.config.base import parse_spec
from cadre.errors import CadreError, ConfigError, DataError
from cadre.evaluate.cost import CostSummary, PriceTable, load_prices, summarize_cost
from cadre.evaluate.metrics import Metric, normalize_label
from cadre.evaluate.perturb import get_perturbation, perturb_items
from cadre.evaluate.stats import Comparison, Spread, paired_bootstrap, paired_comparison, spread
from cadre.evaluate.systems import EvalRequest, EvalSystem, SystemSpec, build_systems
from cadre.evaluate.task import Item, PromptBuilder, TaskSpec, load_items, make_extractor

__all__ = [
    "ITEMS_FILE",
    "RUN_FILE",
    "SUMMARY_FILE",
    "RobustnessResult",
    "RunSummary",
    "SystemResult",
    "compare_run",
    "read_records",
    "run_eval",
    "summarize",
]

RUN_FILE = "run.json"
ITEMS_FILE = "items.jsonl"
SUMMARY_FILE = "summary.json"
ORIGINAL = "original"


@dataclass
class LatencyStats:
    n: int
    mean_s: float | None
    p50_s: float | None
    p95_s: float | None
    ttft_p50_s: float | None
    prompt_tokens_mean: float | None
    completion_tokens_mean: float | None
    values_s: list[float] = field(default_factory=list)  # every answered request's latency (for the charts)


@dataclass
class SystemResult:
    name: str
    kind: str
    model: str | None
    adapter: str | None
    shots: int
    n: int  # items with a record (original, all repeats)
    expected: int
    metric: float  # the task metric (mean over repeats)
    accuracy: float  # share of items scored fully correct
    failures: int
    failure_rate: float
    latency: LatencyStats
    cost: CostSummary
    repeats: Spread | None = None
    routes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # a few distinct error messages


@dataclass
class RobustnessResult:
    system: str
    perturbation: str
    description: str
    n: int
    original: float  # metric on the same items, unperturbed
    perturbed: float
    delta: float
    delta_low: float | None  # 95% paired bootstrap CI of the delta (perturbed - original)
    delta_high: float | None
    consistency: float  # same answer before and after (same correctness when the answer was recomputed)
    flipped_to_wrong: int
    flipped_to_right: int


@dataclass
class RunSummary:
    run_dir: str
    task: str
    metric: str
    n_items: int
    baseline: str | None
    complete: bool
    systems: dict[str, SystemResult]
    comparisons: list[Comparison]
    robustness: list[RobustnessResult]
    perturbations: list[str]
    repeats: int
    temperature: float
    created: str
    seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    return obj


# ---------------------------------------------------------------------------------------------- records


def read_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every record in ``items.jsonl`` (a line cut off by an interruption is ignored)."""
    path = Path(run_dir) / ITEMS_FILE
    if not path.is_file():
        return []
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # a partial last line from an interrupted write
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return out


def _key(rec: Mapping[str, Any]) -> tuple[str, str, str, int]:
    return (
        str(rec["system"]),
        str(rec["item_id"]),
        str(rec.get("perturbation") or ORIGINAL),
        int(rec["repeat"]),
    )


def latest_records(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    """The last record per (system, item, perturbation, repeat): a retried failure replaces the failure."""
    out: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for r in records:
        out[_key(r)] = dict(r)
    return out


class _RecordWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_file() and path.stat().st_size > 0:
            data = path.read_bytes()
            if not data.endswith(b"\n"):  # drop a partial last line left by an interruption
                path.write_bytes(data[: data.rfind(b"\n") + 1])
        self._fh = path.open("a", encoding="utf-8")

    def write(self, rec: Mapping[str, Any]) -> None:
        self._fh.write(json.dumps(_jsonable(dict(rec)), ensure_ascii=False, default=str) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


# ---------------------------------------------------------------------------------------------- run


def _canonical(pred: Any) -> str:
    if pred is None:
        return "\x00none"
    if isinstance(pred, dict):
        return json.dumps({k: _canonical(v) for k, v in pred.items()}, sort_keys=True)
    if isinstance(pred, bool):
        return str(pred)
    if isinstance(pred, int | float):
        return repr(float(pred))
    return normalize_label(pred)


def _shots(spec: SystemSpec, task: TaskSpec) -> int:
    return task.prompt.few_shot.k if spec.shots is None else spec.shots


def _check_resume(run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    if not path.is_file():
        return meta
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise DataError(f"{path} is corrupt; remove the run directory or choose another --out") from None
    if old.get("fingerprint") != meta["fingerprint"]:
        raise ConfigError(
            f"{run_dir} holds a run of a different task or settings (task {old.get('task', {}).get('name')!r}); "
            "resume with the same task spec and --temperature, or choose another --out"
        )
    systems = {s["name"]: s for s in old.get("systems", [])}
    for s in meta["systems"]:
        if s["name"] in systems and systems[s["name"]] != s:
            raise ConfigError(
                f"system {s['name']!r} was defined differently in {run_dir} ({systems[s['name']]}); "
                "give the new definition another name, or use another --out"
            )
        systems[s["name"]] = s
    merged = dict(meta)
    merged["systems"] = list(systems.values())
    merged["perturbations"] = list(dict.fromkeys([*old.get("perturbations", []), *meta["perturbations"]]))
    merged["repeats"] = max(int(old.get("repeats", 1)), int(meta["repeats"]))
    merged["created"] = old.get("created", meta["created"])
    merged["baseline"] = meta["baseline"] or old.get("baseline")
    return merged


def run_eval(
    task: TaskSpec,
    systems: Sequence[SystemSpec | EvalSystem],
    out_dir: str | Path,
    *,
    limit: int | None = None,
    perturbations: Sequence[str] = (),
    repeats: int = 1,
    temperature: float | None = None,
    baseline: str | None = None,
    prices: PriceTable | str | Path | None = None,
    perturb_seed: int = 0,
    progress: bool = True,
    backend_options: Mapping[str, Any] | None = None,
    concurrency: int = 1,
) -> RunSummary:
    """Evaluate ``systems`` on ``task`` into ``out_dir`` (resuming what is already there) and summarise.

    Args:
        task: the task spec (see :mod:`cadre.evaluate.task`).
        systems: system specs, or already-built systems (any object with ``name``, ``spec``, ``generate``).
        out_dir: the run directory (created; an existing one is resumed).
        limit: only the first ``limit`` items.
        perturbations: robustness battery to add (names in ``PERTURBATIONS``), evaluated on every system.
        repeats: runs per item (needs temperature > 0 to differ); the summary reports their spread.
        temperature: overrides the task's ``generation.temperature``.
        baseline: the system the others are compared with (default: the first).
        prices: price table for hosted APIs (default: the shipped one).
        perturb_seed: seed for the perturbations.
        progress: show a progress bar.
        backend_options: passed to ``cadre.runtime.load_backend`` (e.g. ``n_threads``).
        concurrency: requests in flight at once per system (fans out to HTTP endpoints; llama.cpp batches
            them). Latency is then measured under load, and the cost of a request is its share of the machine
            (seconds x price / concurrency).

    Returns:
        The run summary (also written to ``summary.json``).

    Raises:
        ConfigError, DataError, NotFoundError: bad task, data or system definitions (before any generation).
    """
    t_start = time.perf_counter()
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be >= 1, got {limit}")
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    gen_spec = (
        task.generation
        if temperature is None
        else task.generation.model_copy(update={"temperature": temperature})
    )
    if repeats > 1 and gen_spec.temperature == 0:
        raise ConfigError(
            "repeats > 1 with temperature 0 gives identical runs; pass a temperature, e.g. --temperature 0.7"
        )
    task = task.model_copy(update={"generation": gen_spec})
    for name in perturbations:
        get_perturbation(name)  # unknown names fail now, with a did-you-mean
    specs: list[SystemSpec] = []
    prebuilt: dict[str, EvalSystem] = {}
    for s in systems:
        if isinstance(s, SystemSpec):
            specs.append(s)
        else:
            prebuilt[s.name] = s
            specs.append(s.spec)
    if not specs:
        raise ConfigError("no systems to evaluate; pass at least one --system")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"system names must be unique, got {', '.join(names)}")
    if baseline is not None and baseline not in names:
        raise ConfigError(f"baseline {baseline!r} is not one of the systems ({', '.join(names)})")

    all_items = load_items(task)
    items = all_items[:limit] if limit else all_items
    extractor = make_extractor(task, all_items)
    metric = task.build_metric()
    builder = PromptBuilder(task, all_items, max_shots=max(_shots(s, task) for s in specs))
    perturbed = perturb_items(items, perturbations, task, seed=perturb_seed)

    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # --limit is not part of the fingerprint: a run can be resumed with more (or fewer) items
    fingerprint_src = json.dumps({"task": task.fingerprint, "perturb_seed": perturb_seed}, sort_keys=True)
    import hashlib

    meta: dict[str, Any] = {
        "format": 1,
        "fingerprint": hashlib.sha256(fingerprint_src.encode()).hexdigest()[:16],
        "task": task.model_dump(mode="json"),
        "systems": [s.model_dump(mode="json") for s in specs],
        "perturbations": list(perturbations),
        "perturbation_items": {p: [it.id for it in v] for p, v in perturbed.items()},
        "repeats": repeats,
        "limit": limit,
        "perturb_seed": perturb_seed,
        "baseline": baseline,
        "item_ids": [it.id for it in items],
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    meta = _check_resume(run_dir, meta)
    # perturbations added on resume need their item lists too
    for p in meta["perturbations"]:
        if p not in perturbed:
            perturbed.update(perturb_items(items, [p], task, seed=perturb_seed))
    meta["perturbation_items"] = {p: [it.id for it in perturbed[p]] for p in meta["perturbations"]}
    (run_dir / RUN_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")

    # a resumed run finishes everything the directory asked for, plus what this call adds
    repeats = int(meta["repeats"])
    run_perts: list[str] = list(meta["perturbations"])
    done = {k for k, r in latest_records(read_records(run_dir)).items() if not r.get("error")}
    todo: dict[str, list[tuple[int, str, Item]]] = {}
    for s in specs:
        work = []
        for r in range(repeats):
            for pname, its in [(ORIGINAL, items), *[(p, perturbed[p]) for p in run_perts]]:
                for it in its:
                    if (s.name, it.id, pname, r) not in done:
                        work.append((r, pname, it))
        if work:
            todo[s.name] = work

    writer = _RecordWriter(run_dir / ITEMS_FILE)
    loaded: dict[str, EvalSystem] = {}
    try:
        if todo:
            need = [s for s in specs if s.name in todo or _is_target_of(s, specs, todo)]
            loaded, load_errors = build_systems(
                [s for s in need if s.name not in prebuilt],
                prebuilt={k: v for k, v in prebuilt.items() if any(s.name == k for s in need)},
                backend_options=backend_options,
            )
            total = sum(len(v) for v in todo.values())
            with _progress(progress, total, task.name) as advance:
                for s in specs:

                    def one(job: tuple[int, str, Item], s: SystemSpec = s) -> dict[str, Any]:
                        r, pname, it = job
                        rec = _answer(
                            s,
                            loaded.get(s.name),
                            load_errors.get(s.name),
                            it,
                            pname,
                            r,
                            task,
                            builder,
                            extractor,
                            metric,
                        )
                        rec["concurrency"] = concurrency
                        return rec

                    work = todo.get(s.name, [])
                    if concurrency == 1:
                        for w in work:
                            writer.write(one(w))
                            advance(s.name)
                    else:
                        _fan_out(one, work, concurrency, writer, lambda name=s.name: advance(name))
    finally:
        writer.close()
        for sys_ in loaded.values():
            with contextlib.suppress(Exception):  # closing must not hide the run's outcome
                sys_.close()
        summary = summarize(run_dir, prices=prices)
        summary.seconds = time.perf_counter() - t_start
        (run_dir / SUMMARY_FILE).write_text(
            json.dumps(summary.to_json(), indent=2, ensure_ascii=False), encoding="utf-8"
        )
    return summary


def _fan_out(
    fn: Any, work: Sequence[tuple[int, str, Item]], concurrency: int, writer: _RecordWriter, advance: Any
) -> None:
    """Run ``fn`` over ``work`` on ``concurrency`` threads; records are written as they complete."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cadre-eval")
    try:
        pending: set[Future[dict[str, Any]]] = set()
        queue = list(work)[::-1]
        while queue or pending:
            while queue and len(pending) < concurrency:
                pending.add(pool.submit(fn, queue.pop()))
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                writer.write(fut.result())
                advance()
    finally:
        # on Ctrl-C: queued work is dropped, requests in flight finish in the background (not recorded)
        pool.shutdown(wait=False, cancel_futures=True)


def _is_target_of(spec: SystemSpec, specs: Sequence[SystemSpec], todo: Mapping[str, Any]) -> bool:
    """True when a routed system with work to do sends requests to ``spec``."""
    return any(
        s.kind == "routed"
        and s.name in todo
        and (spec.name in s.routes.values() or spec.name == s.generalist)
        for s in specs
    )


class _progress:
    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.enabled = enabled
        self.total = total
        self.label = label
        self._p: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda name: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[system]}"),
            transient=False,
        )
        self._p.__enter__()
        tid = self._p.add_task(f"eval {self.label}", total=self.total, system="")

        def advance(name: str) -> None:
            self._p.update(tid, advance=1, system=name)

        return advance

    def __exit__(self, *exc: Any) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)


def _answer(
    spec: SystemSpec,
    system: EvalSystem | None,
    load_error: str | None,
    item: Item,
    pname: str,
    repeat: int,
    task: TaskSpec,
    builder: PromptBuilder,
    extractor: Any,
    metric: Metric,
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "system": spec.name,
        "item_id": item.id,
        "perturbation": pname,
        "repeat": repeat,
        "reference": item.target,
        "prediction": None,
        "score": 0.0,
        "correct": False,
        "raw": None,
        "latency_s": None,
        "ttft_s": None,
        "prompt_tokens": None,
        "completion_tokens": None,
        "finish_reason": None,
        "route": None,
        "error": None,
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if system is None:
        rec["error"] = f"system did not load: {load_error or 'unknown error'}"
        return rec
    request = EvalRequest(
        text=builder.input_text(item),
        build=lambda s: builder.messages(item, shots=_shots(s, task)),
    )
    try:
        gen = system.generate(request, task.generation.params(repeat=repeat))
    except (KeyboardInterrupt, SystemExit):
        raise
    except CadreError as err:
        rec["error"] = f"{type(err).__name__}: {err}"
        return rec
    except Exception as err:  # any failure of one request is recorded and the run goes on
        rec["error"] = f"{type(err).__name__}: {err}"
        return rec
    prediction = extractor(gen.text)
    score = float(metric.score(prediction, item.target))
    rec.update(
        prediction=prediction,
        score=score,
        correct=score >= 1.0 - 1e-9,
        raw=gen.text,
        latency_s=gen.latency_s,
        ttft_s=gen.ttft_s,
        prompt_tokens=gen.prompt_tokens,
        completion_tokens=gen.completion_tokens,
        finish_reason=gen.finish_reason,
        route=gen.route,
    )
    return rec


# ---------------------------------------------------------------------------------------------- summary


def read_run(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise DataError(
            f"{run_dir} is not an evaluation run directory (no {RUN_FILE}); run `cadre eval run` first"
        )
    try:
        meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise DataError(f"{path} is corrupt; re-run the evaluation into a new --out") from None
    return meta


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None


def _latency(recs: Sequence[Mapping[str, Any]]) -> LatencyStats:
    ok = [r for r in recs if not r.get("error") and r.get("latency_s") is not None]
    lat = [float(r["latency_s"]) for r in ok]
    ttft = [float(r["ttft_s"]) for r in ok if r.get("ttft_s") is not None]
    pt = [float(r["prompt_tokens"]) for r in ok if r.get("prompt_tokens") is not None]
    ct = [float(r["completion_tokens"]) for r in ok if r.get("completion_tokens") is not None]
    return LatencyStats(
        n=len(lat),
        mean_s=float(np.mean(lat)) if lat else None,
        p50_s=_percentile(lat, 50),
        p95_s=_percentile(lat, 95),
        ttft_p50_s=_percentile(ttft, 50),
        prompt_tokens_mean=float(np.mean(pt)) if pt else None,
        completion_tokens_mean=float(np.mean(ct)) if ct else None,
        values_s=lat,
    )


def _scores_by_item(
    recs: Mapping[tuple[str, str, str, int], dict[str, Any]],
    system: str,
    pname: str,
    ids: Sequence[str],
    repeats: int,
) -> dict[str, list[dict[str, Any]]]:
    """item id -> its records over the repeats (only items with a record for every repeat)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for i in ids:
        rows = [recs.get((system, i, pname, r)) for r in range(repeats)]
        if all(row is not None for row in rows):
            out[i] = [row for row in rows if row is not None]
    return out


def _metric_value(metric: Metric, rows: Sequence[Mapping[str, Any]]) -> float:
    if not rows:
        return float("nan")
    return float(metric.aggregate([r.get("prediction") for r in rows], [r.get("reference") for r in rows]))


def summarize(
    run_dir: str | Path,
    *,
    prices: PriceTable | str | Path | None = None,
    baseline: str | None = None,
    resamples: int = 10_000,
    confidence: float = 0.95,
) -> RunSummary:
    """Recompute every figure of a run from its records (no generation): metrics, latency, cost, statistics."""
    meta = read_run(run_dir)
    task = parse_spec(TaskSpec, meta["task"], source=f"{run_dir}/{RUN_FILE}: task")
    specs = {s["name"]: parse_spec(SystemSpec, s, source=f"{run_dir}/{RUN_FILE}") for s in meta["systems"]}
    metric = task.build_metric()
    price_table = prices if isinstance(prices, PriceTable) else load_prices(prices)
    ids: list[str] = list(meta["item_ids"])
    repeats = int(meta.get("repeats", 1))
    recs = latest_records(read_records(run_dir))
    names = list(specs)
    base = baseline or meta.get("baseline") or names[0]
    if base not in specs:
        raise ConfigError(f"baseline {base!r} is not a system of this run ({', '.join(names)})")

    results: dict[str, SystemResult] = {}
    per_item: dict[str, dict[str, list[dict[str, Any]]]] = {}
    complete = True
    for name, spec in specs.items():
        rows_by_item = _scores_by_item(recs, name, ORIGINAL, ids, repeats)
        per_item[name] = rows_by_item
        all_rows = [r for rows in rows_by_item.values() for r in rows]
        expected = len(ids) * repeats
        complete &= len(all_rows) == expected
        per_repeat = [
            _metric_value(metric, [rows[r] for rows in rows_by_item.values()]) for r in range(repeats)
        ]
        failures = sum(1 for r in all_rows if r.get("error"))
        routes: dict[str, int] = {}
        for r in all_rows:
            if r.get("route"):
                routes[str(r["route"])] = routes.get(str(r["route"]), 0) + 1
        errors = list(dict.fromkeys(str(r["error"]) for r in all_rows if r.get("error")))[:5]
        results[name] = SystemResult(
            name=name,
            kind=spec.kind,
            model=spec.model if spec.kind != "routed" else spec.router,
            adapter=spec.adapter,
            shots=_shots(spec, task),
            n=len(rows_by_item),
            expected=len(ids),
            metric=float(np.mean(per_repeat)) if all_rows else float("nan"),
            accuracy=float(np.mean([bool(r.get("correct")) for r in all_rows])) if all_rows else float("nan"),
            failures=failures,
            failure_rate=failures / len(all_rows) if all_rows else 0.0,
            latency=_latency(all_rows),
            cost=summarize_cost(spec, all_rows, price_table, specs=specs),
            repeats=spread(per_repeat) if repeats > 1 and all_rows else None,
            routes=routes,
            errors=errors,
        )

    comparisons = []
    for name in names:
        if name == base:
            continue
        comparisons_c = compare_systems(
            per_item[name], per_item[base], metric, a=name, b=base, resamples=resamples, confidence=confidence
        )
        if comparisons_c is not None:
            comparisons.append(comparisons_c)

    robustness = []
    perts: list[str] = list(meta.get("perturbations", []))
    pert_ids: dict[str, list[str]] = meta.get("perturbation_items", {})
    for name in names:
        for p in perts:
            rr = _robustness(recs, metric, name, p, pert_ids.get(p, []))
            if rr is not None:
                robustness.append(rr)
            p_ids = pert_ids.get(p, [])
            complete &= all((name, i, p, r) in recs for i in p_ids for r in range(repeats))

    return RunSummary(
        run_dir=str(run_dir),
        task=task.name,
        metric=task.metric.name,
        n_items=len(ids),
        baseline=base,
        complete=complete,
        systems=results,
        comparisons=comparisons,
        robustness=robustness,
        perturbations=perts,
        repeats=repeats,
        temperature=task.generation.temperature,
        created=str(meta.get("created", "")),
    )


def compare_systems(
    a_items: Mapping[str, Sequence[Mapping[str, Any]]],
    b_items: Mapping[str, Sequence[Mapping[str, Any]]],
    metric: Metric,
    *,
    a: str,
    b: str,
    resamples: int = 10_000,
    confidence: float = 0.95,
) -> Comparison | None:
    """Paired comparison of two systems on the items both answered (scores averaged over repeats)."""
    common = [i for i in a_items if i in b_items]
    if not common:
        return None
    a_scores = [float(np.mean([float(r.get("score") or 0.0) for r in a_items[i]])) for i in common]
    b_scores = [float(np.mean([float(r.get("score") or 0.0) for r in b_items[i]])) for i in common]
    statistic = None
    if getattr(metric, "corpus_level", False):
        a_pred = [a_items[i][0].get("prediction") for i in common]
        b_pred = [b_items[i][0].get("prediction") for i in common]
        refs = [a_items[i][0].get("reference") for i in common]

        def statistic(idx: np.ndarray) -> tuple[float, float]:
            r = [refs[j] for j in idx]
            return (
                metric.aggregate([a_pred[j] for j in idx], r),
                metric.aggregate([b_pred[j] for j in idx], r),
            )

        resamples = min(resamples, 2000)  # each replicate recomputes the metric in Python
    return paired_comparison(
        a_scores,
        b_scores,
        a_name=a,
        b_name=b,
        metric=getattr(metric, "name", "metric"),
        statistic=statistic,
        resamples=resamples,
        confidence=confidence,
    )


def _robustness(
    recs: Mapping[tuple[str, str, str, int], dict[str, Any]],
    metric: Metric,
    system: str,
    pname: str,
    ids: Sequence[str],
) -> RobustnessResult | None:
    pairs = [
        (recs[(system, i, ORIGINAL, 0)], recs[(system, i, pname, 0)])
        for i in ids
        if (system, i, ORIGINAL, 0) in recs and (system, i, pname, 0) in recs
    ]
    if not pairs:
        return None
    try:
        p_obj = get_perturbation(pname)
        description, changes = p_obj.description, p_obj.changes_answer
    except CadreError:
        description, changes = pname, True
    orig = [o for o, _ in pairs]
    pert = [p for _, p in pairs]
    consistent = 0
    for o, p in pairs:
        if changes or _canonical(o.get("reference")) != _canonical(p.get("reference")):
            consistent += bool(o.get("correct")) == bool(p.get("correct"))
        else:
            consistent += _canonical(o.get("prediction")) == _canonical(p.get("prediction"))
    o_val, p_val = _metric_value(metric, orig), _metric_value(metric, pert)
    low = high = None
    if len(pairs) >= 2:
        boot = paired_bootstrap(
            [float(p.get("score") or 0.0) for p in pert],
            [float(o.get("score") or 0.0) for o in orig],
            resamples=2000,
        )
        low, high = boot.low, boot.high
    return RobustnessResult(
        system=system,
        perturbation=pname,
        description=description,
        n=len(pairs),
        original=o_val,
        perturbed=p_val,
        delta=p_val - o_val,
        delta_low=low,
        delta_high=high,
        consistency=consistent / len(pairs),
        flipped_to_wrong=sum(1 for o, p in pairs if o.get("correct") and not p.get("correct")),
        flipped_to_right=sum(1 for o, p in pairs if not o.get("correct") and p.get("correct")),
    )


def compare_run(
    run_dir: str | Path, a: str, b: str, *, resamples: int = 10_000, confidence: float = 0.95
) -> Comparison:
    """Paired comparison of systems ``a`` and ``b`` of a run, on the unperturbed items both answered."""
    meta = read_run(run_dir)
    task = parse_spec(TaskSpec, meta["task"], source=f"{run_dir}/{RUN_FILE}: task")
    names = [s["name"] for s in meta["systems"]]
    for n in (a, b):
        if n not in names:
            from cadre.errors import did_you_mean

            raise did_you_mean(n, names, kind="system")
    ids, repeats = list(meta["item_ids"]), int(meta.get("repeats", 1))
    recs = latest_records(read_records(run_dir))
    comp = compare_systems(
        _scores_by_item(recs, a, ORIGINAL, ids, repeats),
        _scores_by_item(recs, b, ORIGINAL, ids, repeats),
        task.build_metric(),
        a=a,
        b=b,
        resamples=resamples,
        confidence=confidence,
    )
    if comp is None:
        raise DataError(
            f"{a} and {b} have no answered items in common in {run_dir}; run the evaluation first"
        )
    return comp
