"""A real `cadre serve` process on a free loopback port (two specialists over the bundled SmolLM2, a fitted router,
an API key), shared by the integration tests of one session."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

API_KEY = "integration-key-1"

BILLING = [
    "I was charged twice for my order",
    "why is there an extra fee on my invoice",
    "refund the duplicate payment please",
    "my card was billed the wrong amount",
    "cancel the charge on my credit card",
    "the invoice total is wrong",
    "I need a copy of my receipt",
    "how do I update my payment method",
]
SHIPPING = [
    "where is my parcel",
    "the package has not arrived yet",
    "track my delivery",
    "my order shipped to the wrong address",
    "when will the courier come",
    "the box arrived damaged in transit",
    "change the delivery date",
    "is express shipping available",
]

ECOSYSTEM = {
    "specialists": [
        {
            "name": "billing",
            "base": "smollm2-135m",
            "system_prompt": "You answer billing questions.",
            "examples": BILLING,
            "decoding": {"max_tokens": 8, "temperature": 0.0},
        },
        {
            "name": "shipping",
            "base": "smollm2-135m",
            "system_prompt": "You answer shipping questions.",
            "examples": SHIPPING,
            "decoding": {"max_tokens": 8, "temperature": 0.0},
        },
    ],
    "router": {"build": {"strategy": "centroid", "folds": 3}},
    "generalist": {"model": "smollm2-135m", "decoding": {"max_tokens": 8}},
    "server": {"max_tokens_limit": 64},
}


@dataclass(frozen=True)
class Served:
    url: str  # ends in /v1
    key: str


@pytest.fixture(scope="session")
def cadre_server(
    tmp_path_factory: pytest.TempPathFactory, unused_port: Callable[[], int]
) -> Iterator[Served]:
    """`cadre serve ecosystem.yaml --port N` as a subprocess, until the session ends."""
    import httpx

    eco = tmp_path_factory.mktemp("ecosystem") / "ecosystem.yaml"
    eco.write_text(yaml.safe_dump(ECOSYSTEM))
    port = unused_port()
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {
        **os.environ,
        "CADRE_API_KEY": API_KEY,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
    }
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from cadre.cli.main import main; main()",
                "serve",
                str(eco),
                "--port",
                str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    served = Served(url=f"http://127.0.0.1:{port}/v1", key=API_KEY)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "cadre serve did not start:\n" + log.read_text()
            time.sleep(0.3)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
