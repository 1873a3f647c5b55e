"""Fault test of `cadre serve`: while clients keep using the specialists, send malformed JSON, unknown models,
oversized prompts and bodies, wrong keys, disconnect clients mid-stream, and kill the generalist's endpoint.

The server must keep answering the valid traffic (no 5xx on it) and report each fault with the right status in
OpenAI's error shape. The generalist is a second `cadre serve` process (an OpenAI-compatible endpoint on
loopback) that this script kills with SIGKILL half-way.

    .venv/bin/python benchmarks/serve_faults.py [--background-clients 4]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import asyncio
import json
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import yaml

from _serve_common import free_port, start_cadre

KEY = "fault-key-123"


async def background(url: str, clients: int, stop: asyncio.Event, statuses: Counter[str]) -> None:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300
    ) as http:

        async def one(i: int) -> None:
            model = ["support", "invoices"][i % 2]
            while not stop.is_set():
                body = {
                    "model": model,
                    "messages": [{"role": "user", "content": f"Request {i}"}],
                    "max_tokens": 8,
                }
                try:
                    r = await http.post("/v1/chat/completions", json=body)
                    statuses[str(r.status_code)] += 1
                except httpx.HTTPError as err:
                    statuses[type(err).__name__] += 1

        await asyncio.gather(*(one(i) for i in range(clients)))


async def faults(url: str, upstream: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
    auth = {"Authorization": f"Bearer {KEY}"}
    results: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:

        async def case(name: str, expected: int, n: int, send: Any) -> None:
            got: Counter[int] = Counter()
            shapes_ok = 0
            t0 = time.perf_counter()
            for _ in range(n):
                r = await send()
                got[r.status_code] += 1
                try:
                    err = r.json().get("error", {})
                    shapes_ok += int({"message", "type", "code"} <= set(err) and "Traceback" not in r.text)
                except (json.JSONDecodeError, AttributeError):
                    pass
            results.append(
                {
                    "fault": name,
                    "sent": n,
                    "expected": expected,
                    "got": dict(got),
                    "correct": got[expected],
                    "openai_error_shape": shapes_ok,
                    "seconds_each": round((time.perf_counter() - t0) / n, 3),
                }
            )

        chat = "/v1/chat/completions"
        hdr = {**auth, "Content-Type": "application/json"}
        await case(
            "malformed JSON",
            400,
            10,
            lambda: http.post(chat, content=b'{"model": "support", "mess', headers=hdr),
        )
        await case(
            "unknown model",
            404,
            10,
            lambda: http.post(
                chat, json={"model": "gpt-5", "messages": [{"role": "user", "content": "x"}]}, headers=auth
            ),
        )
        long_msg = {"model": "support", "messages": [{"role": "user", "content": "word " * 2000}]}
        await case(
            "oversized prompt (10k chars)", 400, 5, lambda: http.post(chat, json=long_msg, headers=auth)
        )
        huge = {"model": "support", "messages": [{"role": "user", "content": "x" * 200_000}]}
        await case("oversized body (200 kB)", 413, 5, lambda: http.post(chat, json=huge, headers=auth))
        too_many = {"model": "support", "messages": [{"role": "user", "content": "x"}], "max_tokens": 100_000}
        await case("max_tokens above the limit", 400, 5, lambda: http.post(chat, json=too_many, headers=auth))
        await case(
            "wrong API key",
            401,
            5,
            lambda: http.get("/v1/models", headers={"Authorization": "Bearer nope-nope"}),
        )

        # clients that go away mid-stream: the generation must stop and the slot come back
        before = _metric(httpx.get(f"{url}/metrics").text, "cadre_cancelled_total")
        n_disc = 5
        for _ in range(n_disc):
            body = {"model": "generalist", "prompt": "1, 2, 3, 4, 5,", "max_tokens": 64, "stream": True}
            async with http.stream("POST", "/v1/completions", json=body, headers=auth) as s:
                async for line in s.aiter_lines():
                    if line.startswith("data: "):
                        break  # one token, then hang up
        await asyncio.sleep(1.0)
        after = _metric(httpx.get(f"{url}/metrics").text, "cadre_cancelled_total")
        results.append(
            {
                "fault": "client disconnect mid-stream",
                "sent": n_disc,
                "expected": "cancelled",
                "got": {"cancelled": int(after - before)},
                "correct": int(after - before),
            }
        )

        ok_before = Counter()
        for _ in range(3):
            r = await http.post(
                chat,
                json={
                    "model": "generalist",
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 4,
                },
                headers=auth,
            )
            ok_before[r.status_code] += 1
        results.append(
            {
                "fault": "generalist before the kill",
                "sent": 3,
                "expected": 200,
                "got": dict(ok_before),
                "correct": ok_before[200],
            }
        )
        upstream.send_signal(signal.SIGKILL)
        upstream.wait()
        await case(
            "generalist endpoint killed",
            502,
            5,
            lambda: http.post(
                chat,
                json={"model": "generalist", "messages": [{"role": "user", "content": "hi"}]},
                headers=auth,
            ),
        )
    return results


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def run(url: str, upstream: subprocess.Popen[bytes], clients: int) -> dict[str, Any]:
    stop = asyncio.Event()
    statuses: Counter[str] = Counter()
    bg = asyncio.create_task(background(url, clients, stop, statuses))
    await asyncio.sleep(2.0)
    t0 = time.perf_counter()
    results = await faults(url, upstream)
    await asyncio.sleep(3.0)  # valid traffic continues after the kill
    stop.set()
    await bg
    health = httpx.get(f"{url}/health").json()
    return {
        "faults": results,
        "background": dict(statuses),
        "fault_phase_s": round(time.perf_counter() - t0, 1),
        "health_after": health,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--background-clients", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        up_port, gw_port = free_port(), free_port()
        up_eco, gw_eco = Path(tmp) / "upstream.yaml", Path(tmp) / "gateway.yaml"
        up_eco.write_text(
            yaml.safe_dump(
                {
                    "specialists": [{"name": "big", "base": "smollm2-135m"}],
                    "server": {"fallback": "error"},
                }
            )
        )
        gw_eco.write_text(
            yaml.safe_dump(
                {
                    "specialists": [
                        {
                            "name": "support",
                            "base": "smollm2-135m",
                            "system_prompt": "You are a support agent.",
                        },
                        {
                            "name": "invoices",
                            "base": "smollm2-135m",
                            "system_prompt": "Extract invoice fields as JSON.",
                        },
                    ],
                    "generalist": {
                        "model": f"openai:big@http://127.0.0.1:{up_port}/v1",
                        "api_key_env": "UPSTREAM_KEY",
                    },
                    "server": {
                        "max_prompt_chars": 4000,
                        "max_request_bytes": 100_000,
                        "max_tokens_limit": 256,
                        "generalist_timeout_s": 30,
                    },
                }
            )
        )
        upstream = start_cadre(
            up_eco, up_port, {"CADRE_API_KEY": "upstream-key-1"}, log_level="error", stdout=subprocess.DEVNULL
        )
        gateway = start_cadre(
            gw_eco,
            gw_port,
            {"CADRE_API_KEY": KEY, "UPSTREAM_KEY": "upstream-key-1"},
            log_level="error",
            stdout=subprocess.DEVNULL,
        )
        try:
            report = asyncio.run(run(f"http://127.0.0.1:{gw_port}", upstream, args.background_clients))
        finally:
            for proc in (gateway, upstream):
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=60)
    bg = report["background"]
    fivexx = sum(v for k, v in bg.items() if k.startswith("5"))
    print(f"{'fault':34} {'sent':>4} {'expected':>9} {'correct':>7}  got")
    for r in report["faults"]:
        print(f"{r['fault']:34} {r['sent']:>4} {r['expected']!s:>9} {r['correct']:>7}  {r['got']}")
    print(f"valid background traffic during the faults: {bg} -> 5xx = {fivexx}")
    print(f"health after: {report['health_after']}")
    all_ok = fivexx == 0 and all(r["correct"] == r["sent"] for r in report["faults"])
    print(
        "RESULT:",
        "every fault reported correctly, valid traffic unaffected" if all_ok else "PROBLEMS (see above)",
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
