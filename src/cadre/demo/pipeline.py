"""``cadre demo``: generate data → train a LoRA specialist per task → fit the router → evaluate → report.

Every step checks its outputs and records them in ``<out>/manifest.json``; a re-run reuses finished steps and
redoes only what changed (or what a crash left half-done). A step whose part of cadre is unavailable is
skipped and the report says so, instead of faking its output.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from cadre.demo.config import DemoConfig
from cadre.demo.manifest import StepRecord
from cadre.demo.steps import SkipStep, StepRunner, step_done
from cadre.demo.training import TrainingChild
from cadre.errors import CadreError

__all__ = ["DemoResult", "run_demo"]

DEFAULT_PRICE_PER_HOUR = 0.10
"""USD/hour assumed for this machine when ``cadre cost calibrate`` gave none: about what a 2-vCPU cloud VM
costs on demand (e.g. AWS c7a.large, $0.10/h in us-east-1, 2026 list price)."""


@dataclass
class DemoResult:
    """What the demo produced (paths relative to nothing: absolute or as given)."""

    out: Path
    report_html: Path | None
    report_md: Path | None
    ecosystem: Path | None
    serve_command: str
    client_snippet: str
    steps: dict[str, StepRecord] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------------- steps


def _data_step(r: StepRunner) -> StepRecord:
    cfg = r.cfg

    def run() -> tuple[list[Path], dict[str, Any], str]:
        from cadre.synth import read_jsonl, router_view, write_jsonl, write_task

        data = r.out / "data"
        s = cfg.sizes
        outputs: list[Path] = []
        counts: dict[str, Any] = {}
        for task in cfg.tasks:
            res = write_task(
                task, data / task, s.train, s.validation, s.test, cfg.seed, n_oos=s.out_of_scope_test
            )
            outputs += [res.files["train"], res.files["validation"], res.files["test"]]
            counts[task] = res.counts
        oos = write_task(
            "out_of_scope", data / "out_of_scope", s.out_of_scope_train, 8, s.out_of_scope_test, cfg.seed
        )
        counts["out_of_scope"] = oos.counts
        for split in ("train", "test"):
            rows = []
            for task in cfg.tasks:
                rows += read_jsonl(data / task / f"router_{split}.jsonl")
            rows += [router_view(x) for x in read_jsonl(oos.files[split])]
            path = data / f"router_{split}.jsonl"
            write_jsonl(path, rows)
            outputs.append(path)
        total = sum(c["train"] + c["validation"] + c["test"] for c in counts.values())
        return outputs, {"counts": counts}, f"{total} examples in {len(cfg.tasks)} tasks + out-of-scope"

    return r.step("data", [cfg.tasks, cfg.sizes.model_dump(), cfg.seed, _synth_version()], run)


def _synth_version() -> str:
    """A digest of the generators' source, so data is regenerated when a generator changes."""
    import hashlib
    from importlib import resources

    h = hashlib.sha256()
    for name in sorted(p.name for p in resources.files("cadre.synth").iterdir() if p.name.endswith(".py")):
        h.update(resources.files("cadre.synth").joinpath(name).read_bytes())
    return h.hexdigest()[:12]


def _train_step(r: StepRunner, task: str, trainer: TrainingChild) -> StepRecord:
    cfg = r.cfg
    peft_dir = r.out / "specialists" / task
    gguf = r.out / "specialists" / f"{task}.gguf"
    settings = {
        "base": cfg.base,
        "budget": cfg.train_budget,
        "max_length": cfg.max_length,
        "lr": cfg.learning_rate,
        "batch": cfg.batch_size,
        "rank": cfg.lora_rank,
        "seed": cfg.seed,
    }

    def run() -> tuple[list[Path], dict[str, Any], str]:
        if r.manifest.get("data") is None or r.manifest.steps["data"].status != "done":
            raise SkipStep("no data (the data step did not finish)")
        try:
            from cadre.train import TrainConfig, export_adapter
        except ImportError as err:  # the training part is not available in this build
            raise SkipStep(f"cadre.train is not available ({err}); no specialist trained") from None
        resume = False
        if peft_dir.exists():
            has_ckpt = (peft_dir / "checkpoints").is_dir() and any((peft_dir / "checkpoints").iterdir())
            prev = r.manifest.get(f"train-{task}")
            same = prev is not None and prev.fingerprint == r.fps[f"train-{task}"]
            finished = (peft_dir / "adapter_model.safetensors").exists() and (
                peft_dir / "metrics.json"
            ).exists()
            if same and finished:  # trained with these settings, but the export did not finish: export only
                path = export_adapter(peft_dir, "gguf-adapter", out=gguf)
                metrics = json.loads((peft_dir / "metrics.json").read_text(encoding="utf-8"))
                note = f"{metrics.get('steps')} steps (trained earlier); adapter {path.stat().st_size / 1e6:.1f} MB"
                return [peft_dir / "adapter_model.safetensors", path], {"steps": metrics.get("steps")}, note
            if same and has_ckpt:
                resume = True  # an interrupted run with the same settings: continue it
            else:
                shutil.rmtree(peft_dir)  # our own output from other settings: start again
        # the manifest knows this step is in progress with this fingerprint (for resume after a crash)
        r.manifest.record(
            StepRecord(name=f"train-{task}", fingerprint=r.fps[f"train-{task}"], status="running")
        )
        data = r.out / "data" / task
        tc = TrainConfig.model_validate(
            {
                "base": cfg.base,
                "data": data / "train.jsonl",
                "out": peft_dir,
                # no held-out loss during the demo's short budget: it would eat the budget
                "eval_fraction": 0.0,
                "max_length": cfg.max_length,
                "learning_rate": cfg.learning_rate,
                "batch_size": cfg.batch_size,
                "pass_tokens": cfg.pass_tokens,  # memory only: not in the fingerprint
                "lora": {"rank": cfg.lora_rank, "alpha": 2.0 * cfg.lora_rank},
                "budget": cfg.train_budget,
                "early_stopping_patience": None,
                "seed": cfg.seed,
                "threads": cfg.threads,
                "save_every": 25,
            }
        )
        result = trainer.train(
            tc.model_dump(mode="json"), resume=resume, export_to=gguf, label=f"train-{task}"
        )
        metrics = result["metrics"]
        tps = metrics.get("tokens_per_second")
        note = (
            f"{result['steps']} steps ({result['stopped']}), {metrics.get('tokens_seen', '?')} tokens"
            + (f" at {tps:.0f} tok/s" if isinstance(tps, int | float) else "")
            + f"; adapter {gguf.stat().st_size / 1e6:.1f} MB"
        )
        return (
            [peft_dir / "adapter_model.safetensors", gguf],
            {"metrics": metrics, "steps": result["steps"]},
            note,
        )

    # Depends on this task's data only (its sizes, seed and generator version), not on the whole data step:
    # adding a task to the demo does not retrain the others.
    data_fp = [cfg.sizes.train, cfg.seed, _synth_version()]
    return r.step(f"train-{task}", [task, settings, data_fp], run)


def _router_step(r: StepRunner) -> StepRecord:
    cfg = r.cfg

    def run() -> tuple[list[Path], dict[str, Any], str]:
        if r.manifest.get("data") is None or r.manifest.steps["data"].status != "done":
            raise SkipStep("no data (the data step did not finish)")
        try:
            from cadre.route import evaluate_router, fit_router, load_examples, save_router
        except ImportError as err:
            raise SkipStep(f"cadre.route is not available ({err}); requests cannot be routed") from None
        data = r.out / "data"
        router_dir = r.out / "router"
        if router_dir.exists():
            shutil.rmtree(router_dir)
        router = fit_router(load_examples(data / "router_train.jsonl"), progress=True)
        save_router(router, router_dir)
        report = evaluate_router(router, load_examples(data / "router_test.jsonl"))
        from cadre.config import to_jsonable

        rep = to_jsonable(report)
        (router_dir / "demo_eval.json").write_text(json.dumps(rep, indent=2) + "\n", encoding="utf-8")
        note = (
            f"accuracy {report.accuracy:.3f} on {report.n} held-out requests "
            f"({report.n_out_of_scope} out of scope), OOD AUROC "
            + (f"{report.ood_auroc:.3f}" if report.ood_auroc is not None else "n/a")
            + f", p50 {report.p50_ms:.1f} ms"
        )
        return [router_dir / "demo_eval.json"], {"accuracy": report.accuracy}, note

    return r.step("router", [cfg.tasks], run, depends=("data",))


def _ecosystem_step(r: StepRunner, generalist: str) -> StepRecord:
    cfg = r.cfg

    def run() -> tuple[list[Path], dict[str, Any], str]:
        from cadre.demo.ecosystem import write_ecosystem

        trained = [t for t in cfg.tasks if step_done(r, f"train-{t}")]
        path = write_ecosystem(
            r.out, cfg, trained=trained, generalist=generalist, routed=step_done(r, "router")
        )
        missing = [t for t in cfg.tasks if t not in trained]
        note = (
            "specialists "
            + ", ".join(cfg.tasks)
            + (f" ({', '.join(missing)} without adapter)" if missing else "")
        )
        return [path], {"trained": trained}, note

    deps = ("data", "router", *[f"train-{t}" for t in cfg.tasks])
    from cadre.demo.composed import support_pipeline  # an older file without the pipeline is rewritten

    return r.step("ecosystem", [cfg.tasks, generalist, cfg.base, support_pipeline()], run, depends=deps)


def _hardware_step(r: StepRunner, price: float) -> StepRecord:
    """This machine for the cost model: the calibrated ``local`` entry, else measured now (not saved to
    ``$CADRE_HOME``: the demo leaves the user's calibration alone), with the demo's price per hour."""
    cfg = r.cfg

    def run() -> tuple[list[Path], dict[str, Any], str]:
        try:
            from cadre.costmodel import load_hardware
        except ImportError as err:
            raise SkipStep(f"cadre.costmodel is not available ({err})") from None
        hw = load_hardware(cfg.hardware)
        note = f"{hw.display_name}"
        if cfg.hardware == "local" and hw.measured is None:
            from cadre.costmodel import calibrate

            hw = calibrate(decode=False, save=False).hardware
            note = (
                f"measured now: {hw.memory_bandwidth_bytes_per_s / 1e9:.1f} GB/s copy bandwidth, "
                f"{hw.flops('fp32') / 1e9:.0f} GFLOP/s fp32 matmul (a shared CPU measures low)"
            )
        hw.price_per_hour = price
        path = r.out / "hardware.yaml"
        import yaml

        path.write_text(yaml.safe_dump(hw.model_dump(mode="json", exclude_none=True), sort_keys=False))
        return [path], {"name": hw.name}, note + f"; ${price:.2f}/hour"

    return r.step("hardware", [cfg.hardware, price], run)


def pick_generalist(cfg: DemoConfig) -> tuple[str, str]:
    """The local generalist model and why: the configured one, else the largest bundled model available."""
    if cfg.generalist:
        return cfg.generalist, "configured"
    try:
        from cadre.runtime import bundled_model_path

        bundled_model_path("gemma3-270m")
        return "gemma3-270m", "the largest bundled model"
    except CadreError as err:
        return cfg.base, f"gemma3-270m unavailable ({err}); the specialists' base model stands in"
    except ImportError:
        return cfg.base, "cadre.runtime.bundled unavailable; the specialists' base model stands in"


# ------------------------------------------------------------------------------------------------- the demo


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Library warnings, log records below ERROR and progress bars of other packages off for the demo's
    output (``CADRE_DEBUG=1`` keeps them); the process's settings are restored afterwards."""
    if os.environ.get("CADRE_DEBUG"):
        yield
        return
    env = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}
    saved_env = {k: os.environ.get(k) for k in env}
    loggers = [logging.getLogger(n) for n in ("cadre", "transformers", "sentence_transformers", "httpx")]
    levels = [lg.level for lg in loggers]
    os.environ.update({k: v for k, v in env.items() if os.environ.get(k) is None})
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_demo(cfg: DemoConfig, *, console: Console | None = None) -> DemoResult:
    """Run (or resume) the whole demo into ``cfg.out`` and return where everything is."""
    with quiet_libraries():
        return _run_demo(cfg, console=console)


def _run_demo(cfg: DemoConfig, *, console: Console | None = None) -> DemoResult:
    from cadre.demo.composed import composed_step
    from cadre.demo.evaluate_step import evaluate_step
    from cadre.demo.report import write_demo_report

    t0 = time.perf_counter()
    con = console or Console(stderr=True)
    cfg.out.mkdir(parents=True, exist_ok=True)
    r = StepRunner(cfg, con)
    (cfg.out / "demo_config.json").write_text(cfg.model_dump_json(indent=2) + "\n", encoding="utf-8")
    generalist, why = pick_generalist(cfg)
    con.print(
        f"[bold]cadre demo[/] → {cfg.out} ({'fast' if cfg.fast else 'full'}); generalist: {generalist} ({why})"
    )

    _hardware_step(r, price_per_hour(cfg))
    _data_step(r)
    # one child process trains them all: training's memory (torch, activations) is returned when it exits
    with TrainingChild(con) as trainer:
        for task in cfg.tasks:
            _train_step(r, task, trainer)
    _router_step(r)
    evaluate_step(r, generalist=generalist, price_per_hour=price_per_hour(cfg))
    _ecosystem_step(r, generalist)
    composed_step(r, generalist=generalist, price_per_hour=price_per_hour(cfg))
    report = write_demo_report(
        r, generalist=generalist, generalist_why=why, price_per_hour=price_per_hour(cfg)
    )

    eco = cfg.out / "ecosystem.yaml"
    serve = f"cadre serve {eco} --port 8000"
    snippet = (
        "from openai import OpenAI\n"
        'client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")\n'
        'print(client.chat.completions.create(model="auto", messages=[{"role": "user", '
        '"content": "Where is my order #48213? It still has not arrived."}]).choices[0].message.content)'
    )
    return DemoResult(
        out=cfg.out,
        report_html=report.get("html"),
        report_md=report.get("md"),
        ecosystem=eco if eco.is_file() else None,
        serve_command=serve,
        client_snippet=snippet,
        steps=dict(r.manifest.steps),
        table=report.get("table", []),
        seconds=time.perf_counter() - t0,
    )


def price_per_hour(cfg: DemoConfig) -> float:
    """USD/hour of the machine the local systems run on: configured, calibrated, else the documented default."""
    if cfg.price_per_hour is not None:
        return cfg.price_per_hour
    try:
        from cadre.costmodel import load_hardware

        hw = load_hardware(cfg.hardware)
        if hw.price_per_hour > 0:
            return float(hw.price_per_hour)
    except (CadreError, ImportError):
        pass
    return DEFAULT_PRICE_PER_HOUR
