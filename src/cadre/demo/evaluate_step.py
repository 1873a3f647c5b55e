"""The demo's evaluation step: one ``cadre.evaluate`` run per task, plus a robustness run per task."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cadre.demo.evaluation import CachedSystem, task_spec
from cadre.demo.steps import SkipStep, StepRunner, step_done
from cadre.errors import CadreError

if TYPE_CHECKING:
    from cadre.evaluate import EvalSystem, SystemSpec

__all__ = ["evaluate_step"]


class _Systems:
    """The systems under test, loaded on first use and shared by every task's runs."""

    def __init__(
        self, r: StepRunner, *, generalist: str, price_per_hour: float, trained: dict[str, Path]
    ) -> None:
        self.r = r
        self.generalist_model = generalist
        self.pph = price_per_hour
        self.trained = trained
        self._generalist: CachedSystem | None = None
        self._specialists: dict[str, CachedSystem] = {}
        self._backends: list[Any] = []
        self._router: Any = None

    def _spec(self, **kw: Any) -> SystemSpec:
        from cadre.evaluate import SystemSpec

        return SystemSpec(hardware=self.r.cfg.hardware, price_per_hour=self.pph, **kw)

    def _load(self, model: str, adapters: dict[str, str | Path] | None = None) -> Any:
        from cadre.runtime import load_backend

        backend = load_backend(model, adapters=adapters, n_ctx=2048, n_threads=self.r.cfg.threads)
        self._backends.append(backend)
        return backend

    def generalist(self) -> CachedSystem:
        if self._generalist is None:
            from cadre.evaluate import BackendSystem

            spec = self._spec(name="generalist", model=self.generalist_model, shots=self.r.cfg.shots)
            self._generalist = CachedSystem(BackendSystem(spec, self._load(self.generalist_model)))
        return self._generalist

    def specialist(self, task: str) -> CachedSystem | None:
        if task not in self.trained:
            return None
        if not self._specialists:
            from cadre.evaluate import BackendSystem

            backend = self._load(self.r.cfg.base, {t: str(p) for t, p in self.trained.items()})
            for t, path in self.trained.items():
                spec = self._spec(name="specialist", model=self.r.cfg.base, adapter=str(path), shots=0)
                self._specialists[t] = CachedSystem(BackendSystem(spec, backend, adapter=t))
        return self._specialists[task]

    def ecosystem(self) -> EvalSystem | None:
        from cadre.evaluate import RoutedSystem

        router_dir = self.r.out / "router"
        if not (router_dir / "demo_eval.json").is_file():
            return None
        if self._router is None:
            from cadre.route import load_router

            self._router = load_router(router_dir)
        routes = {t: s for t in self.trained if (s := self.specialist(t)) is not None}
        spec = self._spec(
            name="ecosystem",
            kind="routed",
            router=str(router_dir),
            routes=dict.fromkeys(
                routes, "specialist"
            ),  # every specialist is the same base on the same machine
            generalist="generalist",
        )
        return RoutedSystem(spec, self._router, routes, self.generalist())

    def remote(self) -> list[SystemSpec]:
        from cadre.evaluate import SystemSpec

        cfg = self.r.cfg
        return [
            SystemSpec(
                name=f"remote-{i + 1}" if len(cfg.remote_generalists) > 1 else "remote",
                kind="openai",
                model=m,
                shots=cfg.shots,
                api_key_env=cfg.remote_api_key_env,
            )
            for i, m in enumerate(cfg.remote_generalists)
        ]

    def close(self) -> None:
        for b in self._backends:
            with contextlib.suppress(Exception):  # closing must not hide the outcome
                b.close()


def evaluate_step(r: StepRunner, *, generalist: str, price_per_hour: float) -> None:
    """Evaluate every task (a step each, so an interruption loses one task at most)."""
    cfg = r.cfg
    trained = {t: r.out / "specialists" / f"{t}.gguf" for t in cfg.tasks if step_done(r, f"train-{t}")}
    systems = _Systems(r, generalist=generalist, price_per_hour=price_per_hour, trained=trained)
    settings = [
        generalist,
        cfg.shots,
        cfg.few_shot_selection,
        cfg.perturbations,
        cfg.robustness_items,
        cfg.concurrency,
        cfg.latency_probe,
        price_per_hour,
        cfg.remote_generalists,
        sorted(trained),
        step_done(r, "router"),
    ]
    deps = ("data", "router", *[f"train-{t}" for t in cfg.tasks])
    try:
        for task in cfg.tasks:
            r.step(
                f"eval-{task}",
                [task, settings],
                functools.partial(_eval_task, r, systems, task),
                depends=deps,
            )
    finally:
        systems.close()


def _eval_task(r: StepRunner, systems: _Systems, task: str) -> tuple[list[Path], dict[str, Any], str]:
    from cadre.evaluate import run_eval, write_report

    if not step_done(r, "data"):
        raise SkipStep("no data (the data step did not finish)")
    cfg = r.cfg
    spec = task_spec(task, r.out / "data", shots=cfg.shots, selection=cfg.few_shot_selection)
    run: list[Any] = [systems.generalist()]
    specialist = systems.specialist(task)
    if specialist is not None:
        run.append(specialist)
    eco = systems.ecosystem()
    if eco is not None:
        run.append(eco)
    run += systems.remote()
    main_dir = r.out / "eval" / task
    summary = run_eval(
        spec,
        run,
        main_dir,
        baseline="generalist",
        progress=True,
        concurrency=cfg.concurrency,
        latency_probe=cfg.latency_probe,
    )
    write_report(main_dir, summary)
    outputs = [main_dir / "summary.json", main_dir / "report.html"]
    rob_summary = None
    if cfg.perturbations:
        rob_dir = r.out / "eval" / f"{task}-robustness"
        rob_systems = [s for s in run[:2]]
        try:
            rob_summary = run_eval(
                spec,
                rob_systems,
                rob_dir,
                limit=min(cfg.robustness_items, summary.n_items),
                perturbations=cfg.perturbations,
                baseline="generalist",
                perturb_seed=cfg.seed,
                progress=True,
                concurrency=cfg.concurrency,
                latency_probe=0,
            )
            write_report(rob_dir, rob_summary)
            outputs.append(rob_dir / "summary.json")
        except CadreError as err:
            r.console.print(f"[yellow]robustness run for {task} failed: {err}[/]")
    hits = sum(s.hits for s in run if isinstance(s, CachedSystem))
    parts = [f"{n} {res.metric:.3f}" for n, res in summary.systems.items()]
    note = f"{summary.n_items} items: " + ", ".join(parts) + f" ({hits} answers reused)"
    if not summary.complete:
        note += "; incomplete (some requests failed, see the report)"
    return outputs, {"complete": summary.complete, "robustness": rob_summary is not None}, note
