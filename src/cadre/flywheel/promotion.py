"""Promote a specialist into a running ecosystem, and roll it back (see the package docstring)."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from cadre.errors import CadreError, ConfigError, DataError, NotFoundError
from cadre.evaluate import shadow_report
from cadre.route import Example, fit_router, save_router
from cadre.serve import check_ecosystem, load_ecosystem, parse_ecosystem
from cadre.traffic import ACTION_LOG, describe_store, log_action

__all__ = ["PromoteResult", "RollbackResult", "ShadowEvidence", "promote", "rollback", "shadow_evidence"]

BACKUPS = ".flywheel"  # folder next to the ecosystem file: backups of the file (and of a saved router)


@dataclass
class ShadowEvidence:
    """What shadow mode logged about the specialist before its promotion."""

    store: str
    measure: str
    n: int
    agreement: float
    low: float  # 95% bootstrap CI of the agreement
    high: float
    failed: int  # shadow generations that failed
    latency_p50_s: float
    generalist_latency_p50_s: float
    cost_per_request: float | None
    generalist_cost_per_request: float
    min_agreement: float | None  # the gate asked for (on the CI's lower bound), if any

    def line(self) -> str:
        return (
            f"shadow: {self.measure} agreement with the generalist {self.agreement:.1%} (95% CI {self.low:.1%} to "
            f"{self.high:.1%}, n = {self.n}, {self.failed} failed); latency p50 {self.latency_p50_s:.3f} s vs "
            f"{self.generalist_latency_p50_s:.3f} s"
        )


def shadow_evidence(
    store: str | Path, specialist: str, *, measure: str = "exact_match", min_agreement: float | None = None
) -> ShadowEvidence:
    """The shadow agreement of ``specialist`` in ``store`` on ``measure``; with ``min_agreement``, a gate on the
    lower bound of its 95% CI (so that a handful of lucky requests do not pass it).

    Raises:
        DataError: no shadow answers of ``specialist``, an unknown measure, or the gate not met.
    """
    report = shadow_report(store, specialist, similarity=measure == "similarity")
    found = {a.measure: a for a in report.agreement}
    if measure not in found:
        raise DataError(f"measure {measure!r} is not available here; use one of {', '.join(found)}")
    a = found[measure]
    evidence = ShadowEvidence(
        store=describe_store(store),
        measure=measure,
        n=a.n,
        agreement=a.specialist,
        low=a.low,
        high=a.high,
        failed=sum(report.skipped.values()),
        latency_p50_s=report.specialist_latency_p50_s,
        generalist_latency_p50_s=report.generalist_latency_p50_s,
        cost_per_request=report.specialist_cost_per_request,
        generalist_cost_per_request=report.generalist_cost_per_request,
        min_agreement=min_agreement,
    )
    if min_agreement is not None and a.low < min_agreement:
        raise DataError(
            f"{specialist!r} is not promoted: {evidence.line()}; the CI's lower bound {a.low:.1%} is below "
            f"--min-agreement {min_agreement:.1%}. Keep it in shadow for more requests, or retrain it"
        )
    return evidence


@dataclass
class PromoteResult:
    ecosystem: str
    specialist: str
    examples: int
    backup: str
    router: str  # how the router was refitted
    reloaded: str | None  # the server reloaded, or None (no admin URL given)
    warnings: list[str]
    log: str
    shadow: ShadowEvidence | None = None  # the evidence quoted (and gated on), if a shadow store was given

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RollbackResult:
    ecosystem: str
    restored: str  # the backup put back
    reloaded: str | None
    log: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _examples(train_file: Path, limit: int, seed: int) -> list[str]:
    if not train_file.is_file():
        raise NotFoundError(f"{train_file} does not exist; write it with `cadre traffic export`")
    prompts: list[str] = []
    for i, line in enumerate(train_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            msgs = json.loads(line)["messages"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DataError(f"{train_file}:{i}: expected {{'messages': [...]}} (chat JSONL)") from None
        user = [m.get("content") for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
        if user and isinstance(user[-1], str) and user[-1].strip():
            prompts.append(user[-1])
    prompts = list(dict.fromkeys(prompts))
    if len(prompts) < 8:
        raise DataError(
            f"{train_file} has {len(prompts)} distinct requests; a route needs at least 8 examples"
        )
    random.Random(seed).shuffle(prompts)
    return prompts[:limit]


def _reload(admin_url: str, admin_key: str | None) -> str:
    if not admin_key:
        raise ConfigError("reloading needs the server's admin key: set CADRE_ADMIN_KEY (or --admin-key-env)")
    url = admin_url.rstrip("/") + "/admin/reload"
    try:
        r = httpx.post(
            url,
            json={},
            headers={"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"},
            timeout=600,
        )
    except httpx.HTTPError as err:
        raise CadreError(f"could not reach {url}: {err}") from None
    if r.status_code != 200:
        raise CadreError(f"{url} answered {r.status_code}: {r.text[:300]}")
    return url


def _backup(eco: Path, router_dir: Path | None) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 10**6:06d}"
    folder = eco.parent / BACKUPS / stamp
    folder.mkdir(parents=True)
    shutil.copy2(eco, folder / eco.name)
    if router_dir is not None and router_dir.is_dir():
        shutil.copytree(router_dir, folder / "router")
    return folder


def promote(
    ecosystem: str | Path,
    *,
    name: str,
    base: str,
    train_file: str | Path,
    adapter: str | None = None,
    description: str = "",
    max_examples: int = 64,
    out_of_scope: Sequence[str] = (),
    admin_url: str | None = None,
    admin_key: str | None = None,
    log: str | Path | None = None,
    seed: int = 0,
    shadow_store: str | Path | None = None,
    min_agreement: float | None = None,
    measure: str = "exact_match",
) -> PromoteResult:
    """Add specialist ``name`` (``base`` + ``adapter``) with a route learnt from ``train_file``'s requests.

    A specialist that runs in shadow (``capture.shadow``) is promoted in place: its entry gets the new examples
    (and ``adapter``, when given) and leaves ``capture.shadow``. With ``shadow_store`` the shadow evidence
    (:func:`shadow_evidence`) is computed first, quoted in the result and the action log, and with
    ``min_agreement`` it must pass before anything changes.

    ``out_of_scope``: requests the new route must not take (typically the other tasks' captured requests); up to
    ``max_examples`` of them are added to ``router.out_of_scope``, which calibrates the router's gate.

    The new file is validated (``cadre check``) and the router fitted before anything is replaced; the old file
    (and a saved router folder) is kept under ``.flywheel/`` for :func:`rollback`. With ``admin_url`` the running
    server reloads (``POST /admin/reload`` with ``admin_key``); if that fails, the old file is put back.

    Raises:
        ConfigError: the name is taken, or the new ecosystem does not validate.
        DataError / NotFoundError: the training file is missing or has too few requests, or the shadow evidence
            is missing or below ``min_agreement``.
        CadreError: the reload failed (the file was restored).
    """
    eco = Path(ecosystem)
    if admin_url and not admin_key:
        raise ConfigError("reloading needs the server's admin key: set CADRE_ADMIN_KEY (or --admin-key-env)")
    if min_agreement is not None and shadow_store is None:
        raise ConfigError(
            "--min-agreement needs the shadow evidence: give --shadow-store (the capture store)"
        )
    current = load_ecosystem(eco)
    shadowed = current.capture is not None and any(s.specialist == name for s in current.capture.shadow)
    if current.specialist(name) is not None and not shadowed:
        raise ConfigError(f"specialist {name!r} is already in {eco}; pick another name or roll back first")
    evidence = (
        shadow_evidence(shadow_store, name, measure=measure, min_agreement=min_agreement)
        if shadow_store is not None
        else None
    )
    examples = _examples(Path(train_file), max_examples, seed)
    data = yaml.safe_load(eco.read_text(encoding="utf-8")) or {}
    if shadowed:
        entry = next(s for s in data["specialists"] if s.get("name") == name)
        entry["examples"] = examples
        data["capture"]["shadow"] = [s for s in data["capture"]["shadow"] if s.get("specialist") != name]
    else:
        entry = {"name": name, "base": base, "examples": examples}
        data.setdefault("specialists", []).append(entry)
    if adapter:
        a = Path(adapter).resolve()
        entry["adapter"] = (
            str(a.relative_to(eco.parent.resolve())) if a.is_relative_to(eco.parent.resolve()) else str(a)
        )
    if description or not shadowed:
        entry["description"] = description or f"promoted from traffic ({Path(train_file).name})"
    negatives = list(dict.fromkeys(t for t in out_of_scope if t.strip()))
    random.Random(seed).shuffle(negatives)
    if negatives:
        router = data.setdefault("router", {})
        router["out_of_scope"] = list(router.get("out_of_scope") or []) + negatives[:max_examples]
    new_spec = parse_ecosystem(data, source=str(eco), base_dir=eco.parent)
    # the route: a saved router is refitted and saved; otherwise the server fits it on reload (fitted here too,
    # so that a route that cannot be learnt fails now, not at reload)
    router_dir = new_spec.resolve(new_spec.router.path) if new_spec.router.path else None
    fitted = [Example(text=t, route=s.name) for s in new_spec.specialists for t in s.examples]
    fitted += [Example(text=t, route=None) for t in new_spec.router.out_of_scope]
    router = fit_router(fitted, spec=new_spec.router.build)
    how = f"fitted on {len(fitted)} examples ({len(new_spec.specialists)} routes)"
    tmp = eco.with_name(f".{eco.name}.promote.yaml")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    try:
        warnings = list(check_ecosystem(tmp).get("warnings", []))
    except CadreError:
        tmp.unlink()
        raise
    backup = _backup(eco, router_dir)
    os.replace(tmp, eco)
    if router_dir is not None:
        save_router(router, router_dir)
        how += f", saved to {router_dir}"
    reloaded = None
    log_path = Path(log) if log else eco.parent / ACTION_LOG
    if admin_url:
        try:
            reloaded = _reload(admin_url, admin_key)
        except CadreError as err:
            _restore(eco, backup, router_dir)
            shutil.rmtree(backup)
            log_action(
                log_path, "promote", f"FAILED {name}: reload failed, {eco.name} restored", error=str(err)
            )
            raise
    what = "moved out of shadow" if shadowed else "added"
    line = log_action(
        log_path,
        "promote",
        f"{what} specialist {name!r} ({entry['base']}{' + ' + entry['adapter'] if entry.get('adapter') else ''}) "
        f"in {eco.name}" + (f"; {evidence.line()}" if evidence else ""),
        examples=len(examples),
        out_of_scope=len(negatives[:max_examples]),
        router=how,
        backup=str(backup),
        reloaded=reloaded,
        shadow=asdict(evidence) if evidence else None,
    )
    return PromoteResult(str(eco), name, len(examples), str(backup), how, reloaded, warnings, line, evidence)


def _restore(eco: Path, backup: Path, router_dir: Path | None) -> None:
    shutil.copy2(backup / eco.name, eco)
    if router_dir is not None and (backup / "router").is_dir():
        shutil.rmtree(router_dir, ignore_errors=True)
        shutil.copytree(backup / "router", router_dir)


def rollback(
    ecosystem: str | Path,
    *,
    admin_url: str | None = None,
    admin_key: str | None = None,
    log: str | Path | None = None,
) -> RollbackResult:
    """Put back the ecosystem file (and saved router) from before the last :func:`promote`, and reload.

    The restored backup is removed, so a second rollback goes one promotion further back.

    Raises:
        NotFoundError: nothing to roll back.
        CadreError: the reload failed (the file stays restored; reload by hand).
    """
    eco = Path(ecosystem)
    folder = eco.parent / BACKUPS
    backups = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not backups:
        raise NotFoundError(f"no promotion to roll back for {eco} ({folder} holds no backup)")
    last = backups[-1]
    spec = load_ecosystem(last / eco.name)
    raw = Path(spec.router.path).expanduser() if spec.router.path else None
    router_dir = None if raw is None else raw if raw.is_absolute() else eco.parent / raw
    _restore(eco, last, router_dir)
    shutil.rmtree(last)
    reloaded = _reload(admin_url, admin_key) if admin_url else None
    log_path = Path(log) if log else eco.parent / ACTION_LOG
    line = log_action(log_path, "rollback", f"restored {eco.name} from {last.name}", reloaded=reloaded)
    return RollbackResult(str(eco), str(last), reloaded, line)
