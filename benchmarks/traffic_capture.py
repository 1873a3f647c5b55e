"""Capture's cost: gateway latency with capture on vs off (1 stream and 16 concurrent streams), and redaction
throughput.

Overhead: one `cadre serve` gateway in this process (uvicorn on 127.0.0.1, the bundled SmolLM2 as the
generalist), driven over the socket. Capture is switched on and off on that same running gateway between rounds
(`Recorder.update`), so both arms share the model, threads, prompt and machine state; rounds alternate and medians
are compared. Every prompt carries an e-mail and a card number, so the writer redacts on every record.

Redaction: `Redactor.redact_messages` over generated requests (cadre.synth's four tasks, every third one with
PII added), requests per second, median of runs.

    PYTHONPATH=src python benchmarks/traffic_capture.py [--rounds 7] [--tokens 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from _serve_common import start_in_thread

PII = " Reach me at jane.doe@example.com, card 4111 1111 1111 1111."


def _server(store: Path) -> tuple[object, object, int]:

    from cadre.serve import parse_ecosystem
    from cadre.serve.app import create_app

    spec = parse_ecosystem(
        {
            "specialists": [{"name": "counter", "base": "smollm2-135m"}],
            "generalist": {"model": "smollm2-135m"},
            "server": {"max_batch_size": 16, "queue_size": 64},
            "capture": {"store": str(store), "models": ["generalist"]},
        }
    )
    app = create_app(spec)
    server, _, port = start_in_thread(app)
    return app, server, port


def overhead(*, rounds: int, tokens: int, per_round_single: int = 5, streams: int = 16) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        app, server, port = _server(Path(tmp) / "traffic.db")
        recorder = app.state.gateway.capture.recorder  # type: ignore[attr-defined]
        on_spec = recorder.spec
        off_spec = on_spec.model_copy(update={"enabled": False})
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)

        def one(i: int) -> float:
            body = {
                "model": "generalist",
                "messages": [{"role": "user", "content": f"Count from {i}: {i}, {i + 1}, {i + 2},{PII}"}],
                "max_tokens": tokens,
                "temperature": 0,
            }
            t0 = time.perf_counter()
            r = http.post("/v1/chat/completions", json=body)
            r.raise_for_status()
            return time.perf_counter() - t0

        one(0)  # warm
        arms: dict[str, dict[str, list[float]]] = {
            a: {"single_s": [], "multi_s": [], "single_cpu_s": [], "multi_cpu_s": []} for a in ("on", "off")
        }
        pool = ThreadPoolExecutor(streams)
        for rnd in range(rounds):
            order = ("on", "off") if rnd % 2 == 0 else ("off", "on")
            for arm in order:
                recorder.update(on_spec if arm == "on" else off_spec)
                c0 = time.process_time()
                arms[arm]["single_s"].append(statistics.median(one(i) for i in range(per_round_single)))
                arms[arm]["single_cpu_s"].append((time.process_time() - c0) / per_round_single)
                c0, t0 = time.process_time(), time.perf_counter()
                list(pool.map(one, range(streams)))
                arms[arm]["multi_s"].append(time.perf_counter() - t0)
                arms[arm]["multi_cpu_s"].append(time.process_time() - c0)
        pool.shutdown()
        recorder.flush()
        stats = recorder.stats()
        http.close()
        server.should_exit = True  # type: ignore[attr-defined]
    out: dict[str, object] = {"rounds": rounds, "max_tokens": tokens, "streams": streams, "capture": stats}
    for key in ("single_s", "multi_s", "single_cpu_s", "multi_cpu_s"):
        on, off = statistics.median(arms["on"][key]), statistics.median(arms["off"][key])
        out[key] = {"on": round(on, 4), "off": round(off, 4), "overhead_pct": round(100 * (on / off - 1), 2)}
        out[key + "_per_round_pct"] = [
            round(100 * (a / b - 1), 1) for a, b in zip(arms["on"][key], arms["off"][key], strict=True)
        ]
    return out


def redaction_throughput(*, n: int, runs: int) -> dict[str, object]:
    from cadre.synth import generate, get_generator
    from cadre.traffic import Redactor

    texts: list[str] = []
    for task in ("intents", "invoices", "normalize", "out_of_scope"):
        for rec in generate(get_generator(task), split="train", n=n // 4, seed=1):
            texts.append(next(m["content"] for m in rec["messages"] if m["role"] == "user"))
    requests = [
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": t + (PII if i % 3 == 0 else "")},
        ]
        for i, t in enumerate(texts)
    ]
    redactor = Redactor()
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for msgs in requests:
            redactor.redact_messages(msgs)
        rates.append(len(requests) / (time.perf_counter() - t0))
    chars = sum(len(m["content"]) for r in requests for m in r) / len(requests)
    return {
        "requests": len(requests),
        "mean_chars_per_request": round(chars, 1),
        "requests_per_s_median": round(statistics.median(rates)),
        "runs": [round(r) for r in rates],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--redact-requests", type=int, default=4000)
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the report here")
    args = ap.parse_args()
    report: dict[str, object] = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
    report["redaction"] = redaction_throughput(n=args.redact_requests, runs=5)
    if not args.skip_overhead:
        report["overhead"] = overhead(rounds=args.rounds, tokens=args.tokens)
    report["load_average_after"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
