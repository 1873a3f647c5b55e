"""``cadre traffic``: the captured traffic of ``cadre serve`` (library: :mod:`cadre.traffic`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cadre.cli.output import console, err_console, print_json
from cadre.errors import ConfigError

traffic_app = typer.Typer(
    name="traffic",
    help="Find the tasks in captured generalist traffic and export one as training data (docs/flywheel.md).",
    no_args_is_help=True,
)


def _log(db: str, step: str, message: str, **details: object) -> None:
    """Append to the action log next to the store (docs/flywheel.md)."""
    from cadre.traffic import describe_store, log_action, store_action_log

    log_action(store_action_log(db), step, message, store=describe_store(db), **details)


_STORE_HELP = (
    "The capture store (capture.store in ecosystem.yaml): a SQLite file, a postgresql:// URL or env:NAME."
)


def _shown(db: str) -> str:
    """The store as it may be printed: as given, unless it is a connection string (it may hold a password)."""
    from cadre.traffic import describe_store

    return db if db.startswith("env:") else describe_store(db)


def _encoder(text: str | None) -> Any:
    """``RUNTIME-PRECISION[/lenN]`` (``torch-int8/len128``) -> the router's embedder in that form, or None."""
    if not text:
        return None
    from cadre.route import EncoderForm, get_route_embedder

    head, _, length = text.partition("/")
    runtime, sep, precision = head.partition("-")
    if not sep or (length and not (length.startswith("len") and length[3:].isdigit())):
        raise ConfigError(
            f"--encoder {text!r}: write RUNTIME-PRECISION or RUNTIME-PRECISION/lenN, e.g. torch-int8/len128"
        )
    return get_route_embedder(form=EncoderForm(runtime, precision, int(length[3:]) if length else None))


def _k_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    try:
        return (int(lo), int(hi)) if sep else (int(lo), int(lo))
    except ValueError:
        raise ConfigError(f"--k-range {text!r}: write LOW-HIGH, e.g. 2-20") from None


@traffic_app.command("tasks")
def tasks(
    db: str = typer.Argument(..., help=_STORE_HELP),
    model: list[str] | None = typer.Option(
        None, "--model", help="Requests answered by this model (repeatable; default: generalist; '*': all)."
    ),
    k: int | None = typer.Option(None, "-k", "--k", help="Number of tasks (default: chosen by --criterion)."),
    k_range: str = typer.Option("2-20", help="Range of k tried when -k is not given."),
    criterion: str = typer.Option(
        "calinski_harabasz",
        help="How k is chosen: calinski_harabasz, silhouette (both always reported) or prediction_strength "
        "(the largest k whose clusters reproduce on held-out halves; for a few hundred requests or more).",
    ),
    examples: int = typer.Option(3, help="Example requests shown per task."),
    encoder: str | None = typer.Option(
        None,
        help="A faster form of the embedder, as the router takes it: RUNTIME-PRECISION, optionally /lenN, e.g. "
        "torch-int8/len128 (default: MiniLM as is).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Cluster captured requests into candidate tasks: volume, share of cost, examples, answer consistency."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from cadre.traffic import discover_tasks

    models = model or ["generalist"]
    with Progress(
        TextColumn("[bold]embedding {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
        disable=as_json,
    ) as progress:
        bars: dict[str, object] = {}

        def update(what: str, done: int, total: int) -> None:
            if what not in bars:
                bars[what] = progress.add_task(what, total=total)
            progress.update(bars[what], completed=done)  # type: ignore[arg-type]

        report = discover_tasks(
            db,
            models=[] if "*" in models else models,
            k=k,
            k_range=_k_range(k_range),
            criterion=criterion,
            n_examples=examples,
            embedder=_encoder(encoder),
            on_progress=update,
        )
    _log(
        db,
        "tasks",
        f"{report.k} tasks in {report.records} requests (silhouette {report.silhouette:.3f})",
        cost_shares=[round(t.cost_share, 3) for t in report.tasks],
    )
    if as_json:
        print_json(report.to_json())
        return
    basis = "cost" if report.cost_basis == "price" else "tokens (no prices set)"
    table = Table(
        title=f"{report.records} requests by {', '.join(report.models) or 'any model'}: {report.k} tasks "
        f"(best {report.criterion}; silhouette {report.silhouette:.3f}), share of {basis}",
        show_lines=True,
    )
    for col in ("task", "requests", "share", "cost share", "same answer", "answer sim.", "examples"):
        table.add_column(col, overflow="fold")
    for t in report.tasks:
        table.add_row(
            str(t.task),
            str(t.requests),
            f"{t.share:.0%}",
            f"{t.cost_share:.0%}",
            f"{t.answer_agreement:.0%}",
            f"{t.answer_similarity:.2f}",
            "\n".join(" ".join(e.split())[:120] for e in t.examples),
        )
    console.print(table)
    console.print(f"export one: cadre traffic export {_shown(db)} --task N --out DIR", highlight=False)


@traffic_app.command("export")
def export(
    db: str = typer.Argument(..., help=_STORE_HELP),
    task: int = typer.Option(..., "--task", help="Task number from `cadre traffic tasks`."),
    out: Path = typer.Option(..., "--out", help="Folder for train/validation/test.jsonl."),
    split: str = typer.Option("0.8,0.1,0.1", help="Train, validation, test shares."),
    dedup_threshold: float = typer.Option(
        0.95, help="Requests at least this similar (cosine) stay in one split."
    ),
    teacher: str | None = typer.Option(
        None, help="Relabel with this model's answers, e.g. openai:gpt-4o@https://api.openai.com/v1."
    ),
    teacher_key_env: str | None = typer.Option(None, help="Environment variable holding the teacher's key."),
    include_truncated: bool = typer.Option(
        False, help="Keep answers cut by max_tokens (left out by default: they are incomplete targets)."
    ),
    seed: int = typer.Option(0, help="Seed of the split."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Write one task's requests as chat JSONL (train/validation/test, no near-duplicates across splits)."""
    from cadre.traffic import export_task

    try:
        parts = tuple(float(x) for x in split.split(","))
    except ValueError:
        raise ConfigError(f"--split {split!r}: write three numbers, e.g. 0.8,0.1,0.1") from None
    if len(parts) != 3:
        raise ConfigError(f"--split {split!r}: write three numbers, e.g. 0.8,0.1,0.1")
    result = export_task(
        db,
        task=task,
        out=out,
        fractions=(parts[0], parts[1], parts[2]),
        dedup_threshold=dedup_threshold,
        teacher=teacher,
        teacher_api_key_env=teacher_key_env,
        include_truncated=include_truncated,
        seed=seed,
    )
    _log(db, "export", f"task {task} -> {out}", counts=result.counts, teacher=teacher, skipped=result.skipped)
    if as_json:
        print_json(result.to_json())
        return
    counts = ", ".join(f"{n} {s}" for s, n in result.counts.items())
    skipped = ", ".join(f"{n} {why}" for why, n in result.skipped.items()) or "none"
    console.print(
        f"[green]task {task}[/] → {out}: {counts} ({result.groups} near-duplicate groups, each in one split); "
        f"skipped: {skipped}",
        highlight=False,
    )
    console.print(
        f"train on it: cadre train --data {result.files['train']} --out runs/task{task}", highlight=False
    )


@traffic_app.command("compare")
def compare(
    db: str = typer.Argument(
        ...,
        help="The capture store the test requests were exported from (a file, a postgresql:// URL or env:NAME).",
    ),
    data: Path = typer.Option(
        ..., "--data", help="The held-out requests: test.jsonl from `cadre traffic export`."
    ),
    system: str = typer.Option(
        ...,
        "--system",
        help="The specialist, as `cadre eval --system` takes it: NAME=MODEL[,adapter=PATH], "
        "e.g. task0=smollm2-135m,adapter=runs/task0/adapter-f32.gguf",
    ),
    max_tokens: int = typer.Option(256, help="Longest specialist answer."),
    similarity: bool = typer.Option(True, help="Also measure embedding similarity (MiniLM)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison (and every answer) as JSON."),
) -> None:
    """Compare a specialist with the generalist on held-out logged requests: agreement with CIs, accuracy against
    user labels (cadre traffic feedback, POST /v1/feedback), cost, latency."""
    from cadre.evaluate import compare_on_traffic

    result = compare_on_traffic(db, data, system, max_tokens=max_tokens, similarity=similarity)
    _log_comparison(db, "compare", result, f"{result.n} held-out requests")
    if as_json:
        print_json(result.to_json())
        return
    _print_comparison(result, f"{result.n} held-out requests")


def _log_comparison(db: str, step: str, result: Any, what: str) -> None:
    _log(
        db,
        step,
        f"{result.specialist} vs generalist on {what} ({result.reference} reference)",
        agreement={
            a.measure: [round(a.specialist, 4), round(a.low, 4), round(a.high, 4)] for a in result.agreement
        },
        accuracy={
            a.measure: [
                round(a.specialist, 4),
                round(a.generalist or 0.0, 4),
                round(a.low, 4),
                round(a.high, 4),
            ]
            for a in result.accuracy
        },
    )


def _print_comparison(result: Any, what: str) -> None:
    """The table ``compare`` and ``shadow`` print: agreement, then accuracy against user labels, cost, latency."""
    from rich.table import Table

    table = Table(
        title=f"{result.specialist} vs the generalist on {what} (reference: the {result.reference}'s answers)"
    )
    for col in ("measure", result.specialist, "generalist", "95% CI", "reading"):
        table.add_column(col, overflow="fold")
    for a in [*result.agreement, *result.accuracy]:
        gen = "—" if a.generalist is None else f"{a.generalist:.3f}"
        table.add_row(a.measure, f"{a.specialist:.3f}", gen, f"{a.low:+.3f} to {a.high:+.3f}", a.verdict)
    console.print(table)
    if result.accuracy:
        console.print(f"label rows: accuracy against {result.labelled} user labels", highlight=False)
    if result.user_score is not None:
        console.print(
            f"user score of the generalist's answers: {result.user_score:.3f} (n = {result.user_scored})",
            highlight=False,
        )
    for why, n in result.skipped.items():
        console.print(f"left out: {n} ({why})", highlight=False)
    spec_cost = (
        f"${result.specialist_cost_per_request:.6f}"
        if result.specialist_cost_per_request is not None
        else f"unknown ({result.specialist_cost_note})"
    )
    console.print(
        f"latency p50: {result.specialist} {result.specialist_latency_p50_s:.3f} s, generalist "
        f"{result.generalist_latency_p50_s:.3f} s; cost per request: {result.specialist} {spec_cost}, generalist "
        f"${result.generalist_cost_per_request:.6f}",
        highlight=False,
    )


@traffic_app.command("shadow")
def shadow(
    db: str = typer.Argument(
        ...,
        help="The capture store the shadow answers were logged to (a file, a postgresql:// URL or env:NAME).",
    ),
    specialist: str | None = typer.Option(
        None, "--specialist", help="The shadowed specialist (needed when several were shadowed)."
    ),
    similarity: bool = typer.Option(True, help="Also measure embedding similarity (MiniLM)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report (and every pair) as JSON."),
) -> None:
    """Report a shadowed specialist against the generalist on the live requests both answered: agreement with
    CIs, accuracy against user labels, cost and latency, as logged."""
    from cadre.evaluate import shadow_report

    result = shadow_report(db, specialist, similarity=similarity)
    _log_comparison(db, "shadow", result, f"{result.n} shadowed requests")
    if as_json:
        print_json(result.to_json())
        return
    _print_comparison(result, f"{result.n} live requests, in shadow")
    console.print(
        f"promote it with the evidence: cadre traffic promote ECOSYSTEM --name {result.specialist} --data "
        f"TRAIN.jsonl --shadow-store {_shown(db)} --min-agreement 0.9",
        highlight=False,
    )


@traffic_app.command("feedback")
def feedback(
    db: str = typer.Argument(..., help=_STORE_HELP),
    file: Path = typer.Argument(
        ..., help='JSONL: {"response_id": "...", "label": "...", "score": 0..1} per line.'
    ),
    ecosystem: Path | None = typer.Option(
        None, help="Redact labels as this ecosystem's capture.redact says (default: every built-in detector)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Import users' labels and scores (by response id) into the store; compare and shadow report accuracy."""
    from cadre.serve import load_ecosystem
    from cadre.traffic import import_feedback

    redaction = None
    if ecosystem is not None:
        spec = load_ecosystem(ecosystem)
        redaction = spec.capture.redact if spec.capture is not None else None
    n = import_feedback(db, file, redaction=redaction)
    _log(db, "feedback", f"{n} items from {file}")
    if as_json:
        print_json({"store": _shown(db), "file": str(file), "imported": n})
        return
    console.print(f"{n} feedback items from {file} added to {_shown(db)}", highlight=False)


def _admin_key(env: str) -> str | None:
    import os

    return os.environ.get(env)


@traffic_app.command("promote")
def promote(
    ecosystem: Path = typer.Argument(..., help="The ecosystem file to add the specialist to."),
    name: str = typer.Option(..., "--name", help="The new specialist's model name."),
    base: str = typer.Option("smollm2-135m", help="Its base model."),
    adapter: str | None = typer.Option(None, help="Its adapter (from `cadre export`)."),
    data: Path = typer.Option(
        ..., "--data", help="train.jsonl from `cadre traffic export`: the route's examples."
    ),
    max_examples: int = typer.Option(
        64, help="Most requests kept as the route's examples (and as negatives)."
    ),
    store: str | None = typer.Option(
        None,
        "--store",
        help="The capture store (a file, a postgresql:// URL or env:NAME): the other tasks' requests become the "
        "router's out-of-scope examples.",
    ),
    task: int | None = typer.Option(
        None, "--task", help="With --store: the task being promoted (the others are negatives)."
    ),
    url: str | None = typer.Option(None, help="The running server to reload, e.g. http://127.0.0.1:8000."),
    admin_key_env: str = typer.Option("CADRE_ADMIN_KEY", help="Environment variable holding the admin key."),
    log: Path | None = typer.Option(None, help="Action log (default: flywheel.log next to the ecosystem)."),
    shadow_store: str | None = typer.Option(
        None,
        help="The capture store holding the specialist's shadow answers (a file, a postgresql:// URL or env:NAME): "
        "quote the shadow evidence.",
    ),
    min_agreement: float | None = typer.Option(
        None,
        min=0.0,
        max=1.0,
        help="With --shadow-store: refuse unless the lower bound of the shadow agreement's 95% CI reaches this.",
    ),
    measure: str = typer.Option(
        "exact_match",
        help="The agreement measure quoted and gated on: exact_match, json_field_match, similarity.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Add a specialist and its route to the ecosystem (router refitted, validated, backed up) and hot-reload;
    a specialist in shadow is moved out of it."""
    from cadre.flywheel import promote as promote_specialist
    from cadre.traffic import open_store

    negatives: list[str] = []
    if store is not None:
        if task is None:
            raise ConfigError(
                "--store needs --task: the task being promoted (the other tasks' requests are negatives)"
            )
        with open_store(store) as db:
            negatives = [r.prompt for t in db.task_ids() if t != task for r in db.task_records(t)]
    result = promote_specialist(
        ecosystem,
        name=name,
        base=base,
        adapter=adapter,
        train_file=data,
        max_examples=max_examples,
        out_of_scope=negatives,
        admin_url=url,
        admin_key=_admin_key(admin_key_env),
        log=log,
        shadow_store=shadow_store,
        min_agreement=min_agreement,
        measure=measure,
    )
    if as_json:
        print_json(result.to_json())
        return
    if result.shadow is not None:
        console.print(result.shadow.line(), highlight=False)
    for w in result.warnings:
        err_console.print(f"[yellow]warning[/] {w}", highlight=False)
    where = f"; reloaded {result.reloaded}" if result.reloaded else "; reload the server to serve it"
    console.print(
        f"[green]{name}[/] added to {ecosystem} with {result.examples} route examples; router {result.router}"
        f"{where}. Undo: cadre traffic rollback {ecosystem}",
        highlight=False,
    )


@traffic_app.command("rollback")
def rollback(
    ecosystem: Path = typer.Argument(..., help="The ecosystem file to restore."),
    url: str | None = typer.Option(None, help="The running server to reload."),
    admin_key_env: str = typer.Option("CADRE_ADMIN_KEY", help="Environment variable holding the admin key."),
    log: Path | None = typer.Option(None, help="Action log (default: flywheel.log next to the ecosystem)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Undo the last promotion: restore the ecosystem file (and router) from its backup, and hot-reload."""
    from cadre.flywheel import rollback as rollback_last

    result = rollback_last(ecosystem, admin_url=url, admin_key=_admin_key(admin_key_env), log=log)
    if as_json:
        print_json(result.to_json())
        return
    where = f"; reloaded {result.reloaded}" if result.reloaded else "; reload the server"
    console.print(f"restored {ecosystem} from {result.restored}{where}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the cadre app."""
    app.add_typer(traffic_app, name="traffic")
