"""Load test of `cadre serve` on the bundled ecosystem (`cadre init`): N concurrent clients for D seconds.

Reports: requests, status counts (5xx must be zero), latency p50/p95, completion tokens/s; then the gateway's
overhead at one stream: the same completion through the HTTP server vs calling the runtime directly (same
model file, same prompt, same max_tokens, fixed output length), medians of alternating runs.

    .venv/bin/python benchmarks/serve_load.py [--clients 32] [--duration 60] [--max-tokens 16]

The server runs as its own process (`cadre serve`), the clients in this one (asyncio + the official openai
client). The machine is shared, so absolute figures are noisy; the overhead ratio is measured in one run.
"""

from __future__ import annotations

import os

# Same setting as `cadre serve` for the in-process baseline: llama.cpp's OpenMP threads sleep between tokens.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections import Counter
from importlib.resources import files
from pathlib import Path

import httpx
import openai

from _serve_common import free_port, start_cadre, start_in_thread

PROMPTS = {
    "auto": [
        "I want a refund for my last order",
        "Invoice 7781 from Globex Ltd, 12 March 2024, total 980 EUR",
        "What is the capital of Australia?",
        "My package has not arrived yet",
        "Parse: Acme invoice 12, total $40, dated 2024-01-02",
    ],
    "support": ["How do I reset my password?", "Please cancel my subscription"],
    "invoices": ["Vendor: Soylent Co. Invoice: S-402. Total: 310.75", "Hooli inv 88, 7 July 2024, 1999 USD"],
}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def load(url: str, *, clients: int, duration: float, max_tokens: int) -> dict[str, object]:
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="bench-key-123", max_retries=0, timeout=300)
    statuses: Counter[str] = Counter()
    routes: Counter[str] = Counter()
    latencies: list[float] = []
    tokens = 0
    stop_at = time.perf_counter() + duration
    rng = random.Random(0)

    async def one_client(i: int) -> None:
        nonlocal tokens
        while time.perf_counter() < stop_at:
            model = rng.choice(["auto", "auto", "support", "invoices"])
            text = rng.choice(PROMPTS[model])
            t0 = time.perf_counter()
            try:
                r = await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": text}], max_tokens=max_tokens
                )
            except openai.APIStatusError as err:
                statuses[str(err.status_code)] += 1
                await asyncio.sleep(0.2)
                continue
            except openai.APIConnectionError:
                statuses["connection-error"] += 1
                continue
            latencies.append(time.perf_counter() - t0)
            statuses["200"] += 1
            routes[r.model] += 1
            tokens += r.usage.completion_tokens if r.usage else 0

    t0 = time.perf_counter()
    await asyncio.gather(*(one_client(i) for i in range(clients)))
    wall = time.perf_counter() - t0
    await client.close()
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests_ok": statuses["200"],
        "statuses": dict(statuses),
        "errors_5xx": sum(v for k, v in statuses.items() if k.startswith("5")),
        "p50_s": round(pct(latencies, 0.5), 3),
        "p95_s": round(pct(latencies, 0.95), 3),
        "completion_tokens_per_s": round(tokens / wall, 1),
        "requests_per_s": round(statuses["200"] / wall, 2),
        "routes": dict(routes),
    }


def overhead(*, runs: int, max_tokens: int) -> dict[str, object]:
    """One stream, same process, same loaded model: ``backend.complete`` vs ``/v1/completions`` over a socket.

    The gateway (uvicorn + FastAPI + routing + SSE-free JSON) runs in a thread of this process on 127.0.0.1, so
    both paths use the very same llama.cpp model object, threads and prompt; the HTTP client's own cost counts
    against the gateway. Runs alternate; medians are compared.
    """

    from cadre.runtime import SamplingParams
    from cadre.serve import parse_ecosystem
    from cadre.serve.app import create_app

    spec = parse_ecosystem(
        {"specialists": [{"name": "counter", "base": "smollm2-135m"}], "server": {"fallback": "error"}}
    )
    app = create_app(spec)
    server, thread, port = start_in_thread(app)
    gw = app.state.gateway
    backend = gw.served.workers[gw.snapshot.targets["counter"].worker_key].backend  # the same loaded model

    prompt = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"  # SmolLM2 keeps counting: every run decodes exactly max_tokens
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)
    body = {"model": "counter", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    direct: list[float] = []
    gateway: list[float] = []
    tokens: set[int] = set()
    backend.complete(prompt, params)  # warm both paths
    http.post("/v1/completions", json=body).raise_for_status()
    direct_cpu: list[float] = []
    gateway_cpu: list[float] = []
    for _ in range(runs):
        # wall time, and this process's CPU time (all threads: less sensitive to other jobs on a shared machine)
        t0, c0 = time.perf_counter(), time.process_time()
        c = backend.complete(prompt, params)
        direct.append(time.perf_counter() - t0)
        direct_cpu.append(time.process_time() - c0)
        tokens.add(c.usage.completion_tokens)
        t0, c0 = time.perf_counter(), time.process_time()
        r = http.post("/v1/completions", json=body)
        gateway.append(time.perf_counter() - t0)
        gateway_cpu.append(time.process_time() - c0)
        r.raise_for_status()
        tokens.add(r.json()["usage"]["completion_tokens"])
    http.close()
    server.should_exit = True
    thread.join(timeout=60)
    d, g = statistics.median(direct), statistics.median(gateway)
    return {
        "runs": runs,
        "completion_tokens": sorted(tokens),
        "direct_median_s": round(d, 4),
        "gateway_median_s": round(g, 4),
        "overhead_ratio": round(g / d, 4),
        "overhead_pct": round(100 * (g / d - 1), 2),
        "direct_cpu_median_s": round(statistics.median(direct_cpu), 4),
        "gateway_cpu_median_s": round(statistics.median(gateway_cpu), 4),
        "cpu_overhead_pct": round(
            100 * (statistics.median(gateway_cpu) / statistics.median(direct_cpu) - 1), 2
        ),
        "target_pct": 5.0,
    }


def run_load(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        eco = Path(tmp) / "ecosystem.yaml"
        eco.write_text(files("cadre.serve").joinpath("templates/ecosystem.yaml").read_text())
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        proc = start_cadre(eco, port, {"CADRE_API_KEY": "bench-key-123"})
        startup = time.perf_counter() - t0
        try:
            result = asyncio.run(
                load(url, clients=args.clients, duration=args.duration, max_tokens=args.max_tokens)
            )
            result["health_after"] = httpx.get(f"{url}/health").json()["status"]
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    result["startup_s"] = round(startup, 1)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--overhead-runs", type=int, default=15)
    ap.add_argument("--overhead-tokens", type=int, default=48)
    ap.add_argument("--skip-load", action="store_true", help="only measure the one-stream overhead")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args()

    result = None if args.skip_load else run_load(args)
    over = overhead(runs=args.overhead_runs, max_tokens=args.overhead_tokens)
    report = {"load": result, "overhead_one_stream": over, "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(report))
        return
    if result is not None:
        print(
            f"server start-up (models + router fit): {result['startup_s']} s on {os.cpu_count()} CPUs (shared)"
        )
        print(
            f"load: {result['clients']} clients x {result['seconds']} s -> {result['requests_ok']} ok, "
            f"statuses {result['statuses']}, 5xx = {result['errors_5xx']}, health after: {result['health_after']}"
        )
        print(
            f"latency p50 {result['p50_s']} s, p95 {result['p95_s']} s; {result['requests_per_s']} req/s, "
            f"{result['completion_tokens_per_s']} completion tok/s; routes {result['routes']}"
        )
    print(
        f"one stream, {over['completion_tokens']} tokens, same process and model: direct runtime "
        f"{over['direct_median_s']} s, through the gateway {over['gateway_median_s']} s -> ratio "
        f"{over['overhead_ratio']} ({over['overhead_pct']}% overhead; target <= 5%), medians of {over['runs']} "
        f"alternating runs; CPU time {over['direct_cpu_median_s']} s vs {over['gateway_cpu_median_s']} s "
        f"({over['cpu_overhead_pct']}%)"
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
