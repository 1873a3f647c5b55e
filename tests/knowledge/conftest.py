"""Fixtures for the knowledge tests: the bundled embedder, a real PostgreSQL + pgvector server, PDF files."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    from cadre.runtime.embeddings import get_embedder

    return get_embedder()


@pytest.fixture(autouse=True)
def _cadre_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADRE_HOME", str(tmp_path / "cadre-home"))


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
    """Start a throwaway PostgreSQL server (initdb + pg_ctl) on a free loopback port; yield its DSN."""
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


# --- PDFs ---------------------------------------------------------------------------------------------------
def _pdf_escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def write_pdf(path: Path, pages: list[list[str]]) -> Path:
    """Write a real (uncompressed, Helvetica) PDF with one text line per list item on each page."""
    n = len(pages)
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(f"{4 + 2 * i} 0 R".encode() for i in range(n))
        + b"] /Count %d >>" % n,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, lines in enumerate(pages):
        body = (
            "BT /F1 11 Tf 14 TL 72 740 Td " + " ".join(f"({_pdf_escape(ln)}) Tj T*" for ln in lines) + " ET"
        )
        stream = body.encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for num, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return path


def encrypt_pdf(src: Path, dst: Path, password: str) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(src))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    with dst.open("wb") as fh:
        writer.write(fh)
    return dst


@pytest.fixture
def make_pdf() -> Callable[[Path, list[list[str]]], Path]:
    return write_pdf
