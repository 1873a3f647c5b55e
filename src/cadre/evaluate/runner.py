"""Run systems on a task's items and record every answer (see :mod:`cadre.evaluate.records` for the files).

Running again into the same directory resumes: answered records are skipped, failed ones are retried. A
system that fails (to load, or on an item) gets the error in its records and the run goes on. At the end the
run is summarised (:func:`cadre.evaluate.summarize`) into ``summary.json``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cadre.errors import CadreError, ConfigError, DataError
from cadre.evaluate.cost import PriceTable
from cadre.evaluate.extract import Extractor, build_extractor
from cadre.evaluate.metrics import Metric
from cadre.evaluate.perturb import get_perturbation, perturb_items
from cadre.evaluate.records import (
    ITEMS_FILE,
    ORIGINAL,
    PROBE_FILE,
    RUN_FILE,
    TIMING_FILE,
    RecordWriter,
    latest_records,
    read_jsonl_lines,
    read_run_records,
)
from cadre.evaluate.results import RunSummary, write_summary
from cadre.evaluate.summary import shots_for, summarize
from cadre.evaluate.systems import EvalRequest, EvalSystem, SystemSpec, build_systems
from cadre.evaluate.task import Item, PromptBuilder, TaskSpec, load_items

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_LATENCY_PROBE", "run_eval"]

DEFAULT_CONCURRENCY = 8
"""Requests in flight per system when none is given: the llama.cpp engine's batch (``n_parallel`` 8; more would
only queue for its slots). Measured on the demo's tasks (benchmarks/eval_concurrency.py, docs/eval.md): 8 in
flight served 1.3-2.2x the requests per second of one at a time where answers are longer than a few tokens,
and about the same (0.93-0.95x) for 3-token labels."""

DEFAULT_LATENCY_PROBE = 8
"""Items per system answered again one at a time, after a concurrent pass, for the latency a lone user sees."""


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
    concurrency: int | None = None,
    latency_probe: int | None = None,
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
        concurrency: requests in flight at once per system (default :data:`DEFAULT_CONCURRENCY`): the
            llama.cpp engine batches them, HTTP endpoints get them in parallel. Latency is then measured at
            that load, and a locally run request costs price x the system's busy wall time / its requests.
        latency_probe: with ``concurrency`` > 1, the first N items (default :data:`DEFAULT_LATENCY_PROBE`;
            0: none) are answered again one at a time per system (``probe.jsonl``) for the one-at-a-time
            latency the summary reports beside the concurrent one.

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
    concurrency = DEFAULT_CONCURRENCY if concurrency is None else concurrency
    latency_probe = DEFAULT_LATENCY_PROBE if latency_probe is None else latency_probe
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    if latency_probe < 0:
        raise ConfigError(f"latency_probe must be >= 0, got {latency_probe}")
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
    metric = task.build_metric()
    builder = PromptBuilder(task, all_items, max_shots=max(shots_for(s, task) for s in specs))
    extractor = build_extractor(task.extract, labels=builder.labels)
    perturbed = perturb_items(items, perturbations, task, seed=perturb_seed)

    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # --limit is not part of the fingerprint: a run can be resumed with more (or fewer) items
    fingerprint_src = json.dumps({"task": task.fingerprint, "perturb_seed": perturb_seed}, sort_keys=True)
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
    done = {k for k, r in latest_records(read_run_records(run_dir)).items() if not r.get("error")}
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

    # the one-at-a-time latency probe: the first items, once per system, when the run is concurrent
    probe_items = items[: latency_probe if concurrency > 1 else 0]
    probed = {
        (r["system"], r["item_id"]) for r in read_jsonl_lines(run_dir / PROBE_FILE) if not r.get("error")
    }
    probes = {
        s.name: [it for it in probe_items if (s.name, it.id) not in probed]
        for s in specs
        if any((s.name, it.id) not in probed for it in probe_items)
    }

    writer = RecordWriter(run_dir / ITEMS_FILE)
    probe_writer = RecordWriter(run_dir / PROBE_FILE)
    timing = RecordWriter(run_dir / TIMING_FILE)
    loaded: dict[str, EvalSystem] = {}
    try:
        if todo or probes:
            need = [s for s in specs if _needs_load(s, specs, {**todo, **probes})]
            loaded, load_errors = build_systems(
                [s for s in need if s.name not in prebuilt],
                prebuilt={k: v for k, v in prebuilt.items() if any(s.name == k for s in need)},
                backend_options=backend_options,
            )
            total = sum(len(v) for v in todo.values()) + sum(len(v) for v in probes.values())
            with _progress(progress, total, task.name) as advance:
                for s in specs:

                    def one(
                        job: tuple[int, str, Item], s: SystemSpec = s, fresh: bool = False
                    ) -> dict[str, Any]:
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
                            fresh=fresh,
                        )
                        rec["concurrency"] = 1 if fresh else concurrency
                        return rec

                    work = todo.get(s.name, [])
                    if work:
                        tally = _Tally(writer)
                        t0 = time.perf_counter()
                        if concurrency == 1:
                            for w in work:
                                tally.write(one(w))
                                advance(s.name)
                        else:
                            _fan_out(one, work, concurrency, tally, lambda name=s.name: advance(name))
                        timing.write(tally.timing(s.name, time.perf_counter() - t0, concurrency))
                    for it in probes.get(s.name, []):
                        probe_writer.write(one((0, ORIGINAL, it), fresh=True))
                        advance(f"{s.name} (one at a time)")
    finally:
        writer.close()
        probe_writer.close()
        timing.close()
        for sys_ in loaded.values():
            with contextlib.suppress(Exception):  # closing must not hide the run's outcome
                sys_.close()
        summary = summarize(run_dir, prices=prices)
        summary.seconds = time.perf_counter() - t_start
        write_summary(run_dir, summary)
    return summary


class _Tally:
    """Writes a pass's records and counts what its wall time bought: generated, reused and failed requests."""

    def __init__(self, writer: RecordWriter) -> None:
        self.writer = writer
        self.generated = self.reused = self.errors = 0

    def write(self, rec: dict[str, Any]) -> None:
        self.writer.write(rec)
        if rec.get("error"):
            self.errors += 1
        elif rec.get("reused"):
            self.reused += 1
        else:
            self.generated += 1

    def timing(self, system: str, wall_s: float, concurrency: int) -> dict[str, Any]:
        return {
            "system": system,
            "wall_s": wall_s,
            "requests": self.generated,
            "reused": self.reused,
            "errors": self.errors,
            "concurrency": concurrency,
            "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }


def _fan_out(
    fn: Any, work: Sequence[tuple[int, str, Item]], concurrency: int, writer: _Tally, advance: Any
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


def _needs_load(spec: SystemSpec, specs: Sequence[SystemSpec], todo: Mapping[str, Any]) -> bool:
    """True when ``spec`` has work to do, or a routed system with work to do sends requests to it."""
    return spec.name in todo or any(
        s.kind == "routed"
        and s.name in todo
        and (spec.name in s.routes.values() or spec.name == s.generalist)
        for s in specs
    )


class _progress:
    """A Rich bar on a terminal; elsewhere (a log file, a pipe, CI) a plain line every 10% or 30 s."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.enabled = enabled
        self.total = total
        self.label = label
        self._p: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda name: None
        from rich.console import Console

        console = Console(stderr=True)
        if not console.is_terminal:
            return self._lines(console)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[system]}"),
            console=console,
            transient=False,
        )
        self._p.__enter__()
        tid = self._p.add_task(f"eval {self.label}", total=self.total, system="")

        def advance(name: str) -> None:
            self._p.update(tid, advance=1, system=name)

        return advance

    def _lines(self, console: Any) -> Any:
        t0 = time.perf_counter()
        state = {"done": 0, "shown_at": t0, "shown": 0}
        step = max(1, self.total // 10)

        def advance(name: str) -> None:
            state["done"] += 1
            now = time.perf_counter()
            done = state["done"]
            if done == self.total or done - state["shown"] >= step or now - state["shown_at"] >= 30:
                state["shown"], state["shown_at"] = done, now
                console.print(
                    f"eval {self.label}: {done}/{self.total} ({name}) {now - t0:.0f} s",
                    markup=False,
                    highlight=False,
                )

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
    extractor: Extractor,
    metric: Metric,
    *,
    fresh: bool = False,
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
        "route_s": None,
        "reused": False,
        "error": None,
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if spec.kind == "pipeline" and task.step_target_field:  # a failed run counts as wrong at every step
        rec["step_references"] = item.record.get(task.step_target_field)
    if system is None:
        rec["error"] = f"system did not load: {load_error or 'unknown error'}"
        return rec
    request = EvalRequest(
        text=builder.input_text(item),
        build=lambda s: builder.messages(item, shots=shots_for(s, task)),
        fresh=fresh,
    )
    try:
        labels = builder.labels if task.extract.kind == "label" else None
        schema = task.extract.json_schema if task.extract.kind == "json" else None
        gen = system.generate(
            request, task.generation.params(repeat=repeat, labels=labels, json_schema=schema)
        )
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
        route_s=gen.route_s if gen.route is not None else None,
        reused=gen.reused,
    )
    if gen.step_outputs is not None:
        rec["step_outputs"], rec["trace"] = gen.step_outputs, gen.trace
    return rec
