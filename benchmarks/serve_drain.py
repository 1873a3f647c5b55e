"""SIGTERM under load: every request in flight either completes or gets a clean error, none is cut.

Starts `cadre serve` (the bundled ecosystem of `cadre init`, server.drain_timeout_s set by --drain) as a real
process, keeps N streaming clients busy, sends SIGTERM after --warmup seconds and keeps the clients sending until
the process exits. Each stream is classified:

* completed: its last events are the finish chunk and `data: [DONE]`;
* clean error: an OpenAI error event then `data: [DONE]` (ended at the drain timeout), or a JSON 503 with
  Retry-After (refused while draining);
* refused: connection refused after the listener closed, or a new connection reset before any answer as the
  listener closed (the request was never admitted: a client retries elsewhere);
* cut: anything else (an answer that started and lost its `[DONE]`, a 5xx other than 503). The target is 0.

    .venv/bin/python benchmarks/serve_drain.py [--clients 16] [--drain 5] [--max-tokens 64] [--json]
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
from importlib.resources import files
from pathlib import Path

import httpx
import yaml

from _serve_common import free_port, start_cadre


async def client(url: str, i: int, max_tokens: int, outcomes: Counter[str], gone: asyncio.Event) -> None:
    body = {
        "model": ["support", "invoices"][i % 2],
        "messages": [{"role": "user", "content": f"Count from 1 to 100, request {i}"}],
        "max_tokens": max_tokens,
        "stream": True,
    }
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        while not gone.is_set():
            answered = False  # whether the server sent a status line (then the request was taken in)
            try:
                async with http.stream("POST", "/v1/chat/completions", json=body) as r:
                    answered = True
                    if r.status_code != 200:
                        text = (await r.aread()).decode()
                        ok = r.status_code == 503 and "retry-after" in r.headers and '"error"' in text
                        outcomes["refused_503" if ok else f"cut_{r.status_code}"] += 1
                        await asyncio.sleep(0.2)
                        continue
                    events = [line async for line in r.aiter_lines() if line]
            except httpx.ConnectError:
                outcomes["refused_connection"] += 1
                gone.set()
                return
            except httpx.HTTPError as err:
                # Before any answer: a new connection reset as the listener closed (never admitted, like a
                # refused connection). After the status line: an answer cut short, the failure this counts.
                outcomes[f"cut_{type(err).__name__}" if answered else "reset_before_answer"] += 1
                if not answered:
                    gone.set()
                    return
                continue
            if events and events[-1] == "data: [DONE]":
                errored = any('"error"' in e for e in events[-3:])
                outcomes["clean_error" if errored else "completed"] += 1
            else:
                outcomes["cut_no_done"] += 1


async def run(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        eco = Path(tmp) / "ecosystem.yaml"
        data = yaml.safe_load(files("cadre.serve").joinpath("templates/ecosystem.yaml").read_text())
        data["server"]["drain_timeout_s"] = args.drain
        data["server"]["queue_size"] = max(64, args.clients * 2)
        eco.write_text(yaml.safe_dump(data))
        port = free_port()
        proc = start_cadre(eco, port, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        outcomes: Counter[str] = Counter()
        gone = asyncio.Event()
        tasks = [
            asyncio.create_task(client(url, i, args.max_tokens, outcomes, gone)) for i in range(args.clients)
        ]
        await asyncio.sleep(args.warmup)
        before = dict(outcomes)
        in_flight = httpx.get(f"{url}/health", timeout=10).json()["in_flight"]
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.to_thread(proc.wait, args.drain + 120)
        exit_s = time.perf_counter() - t0
        gone.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        log = proc.stderr.read().decode() if proc.stderr else ""
    cut = sum(v for k, v in outcomes.items() if k.startswith("cut"))
    return {
        "clients": args.clients,
        "drain_timeout_s": args.drain,
        "in_flight_at_sigterm": in_flight,
        "before_sigterm": before,
        "outcomes": dict(outcomes),
        "cut": cut,
        "exit_seconds_after_sigterm": round(exit_s, 2),
        "exit_status": rc,
        "traceback_in_log": "Traceback" in log,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--drain", type=float, default=5.0, help="server.drain_timeout_s")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--warmup", type=float, default=15.0, help="seconds of load before SIGTERM")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
