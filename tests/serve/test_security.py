"""Issue 16, findings 1-3: the admin API as its own privilege, no secret sent to a new place, the Host/Origin
guard of a loopback listener, bind rules that cannot be sidestepped, and bounded metric labels.

Every server here listens on 127.0.0.1; the "attacker" endpoint is a recorder on loopback too.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from cadre.cli.main import app as cli_app
from cadre.errors import ConfigError
from cadre.serve import ApiKeys, bind_socket, check_keys
from cadre.serve.auth import is_loopback
from cadre.serve.guard import host_of

from .conftest import LiveServer, small_spec

KEY = "inference-key-1"
ADMIN_KEY = "admin-key-12345"
SECRET_ENV = "CADRE_TEST_SERVER_SECRET"
SECRET = "s3cret-value-never-sent"


class Recorder(BaseHTTPRequestHandler):
    """Stands in for a host an attacker controls: records what it receives, answers 500."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        Recorder.seen.append({"path": self.path, "authorization": self.headers.get("Authorization", "")})
        self.send_response(500)
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def env(unused_port: Callable[[], int]) -> Iterator[dict[str, Any]]:
    mp = pytest.MonkeyPatch()
    mp.setenv(SECRET_ENV, SECRET)
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}/v1"
    trusted = f"http://127.0.0.1:{unused_port()}/v1"  # the endpoint the file sends the secret to
    spec = small_spec(server={"admin": True, "admin_remote_urls": [sink_url, trusted], "fallback": "error"})
    data = spec.model_dump(mode="json")
    data["specialists"].append({"name": "trusted", "base": f"openai:m@{trusted}", "api_key_env": SECRET_ENV})
    from cadre.serve import parse_ecosystem

    spec = parse_ecosystem(data, source="test")
    server = LiveServer(spec, api_keys=[KEY], admin_keys=ApiKeys([ADMIN_KEY], kind="admin key")).start()
    try:
        yield {"server": server, "sink_url": sink_url, "trusted": trusted}
    finally:
        server.stop()
        sink.shutdown()
        mp.undo()


def admin_post(url: str, body: Any, *, key: str = ADMIN_KEY, **kw: Any) -> httpx.Response:
    return httpx.post(
        url, json=body, headers={"Authorization": f"Bearer {key}", **kw.pop("headers", {})}, **kw
    )


def test_admin_upsert_cannot_send_a_server_secret_to_another_host(env: dict[str, Any]) -> None:
    """Finding 1: the exfiltration. Before: 200, and the next chat sent the secret as a bearer token."""
    server, sink_url = env["server"], env["sink_url"]
    Recorder.seen.clear()
    evil = {"name": "exfil", "base": f"openai:m@{sink_url}", "api_key_env": SECRET_ENV}
    r = admin_post(f"{server.url}/admin/specialists", evil, timeout=60)
    assert r.status_code == 400, r.text
    assert SECRET_ENV in r.json()["error"]["message"] and "already sends" in r.json()["error"]["message"]
    # a URL outside server.admin_remote_urls is refused whatever the key
    other = {"name": "exfil", "base": "openai:m@http://127.0.0.1:9/v1"}
    r = admin_post(f"{server.url}/admin/specialists", other, timeout=60)
    assert r.status_code == 400 and "admin_remote_urls" in r.json()["error"]["message"]
    chat = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "exfil", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert chat.status_code == 404
    assert Recorder.seen == []  # nothing reached the other host, let alone the secret


def test_admin_may_use_an_allowed_url_only_with_the_key_the_file_sends_there(env: dict[str, Any]) -> None:
    server, sink_url, trusted = env["server"], env["sink_url"], env["trusted"]
    Recorder.seen.clear()
    ok = admin_post(
        f"{server.url}/admin/specialists", {"name": "keyless", "base": f"openai:m@{sink_url}"}, timeout=60
    )
    assert ok.status_code == 200, ok.text
    paired = {"name": "trusted2", "base": f"openai:m@{trusted}", "api_key_env": SECRET_ENV}
    assert admin_post(f"{server.url}/admin/specialists", paired, timeout=60).status_code == 200
    chat = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "keyless", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert chat.status_code == 502  # the recorder answers 500
    assert Recorder.seen and all(SECRET not in s["authorization"] for s in Recorder.seen)
    for name in ("keyless", "trusted2"):
        r = httpx.delete(
            f"{server.url}/admin/specialists/{name}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert r.status_code == 200


def test_admin_needs_its_own_key_and_a_json_body(env: dict[str, Any]) -> None:
    server = env["server"]
    url = f"{server.url}/admin/reload"
    assert httpx.post(url, json={}).status_code == 401  # no key, even on localhost
    inference = admin_post(url, {}, key=KEY)
    assert inference.status_code == 401 and inference.json()["error"]["message"] == "invalid admin key"
    form = httpx.post(
        url, content=b"x=1", headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "text/plain"}
    )
    assert form.status_code == 415 and "application/json" in form.json()["error"]["message"]
    # and the admin key is not an inference key
    r = httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 401


def test_foreign_host_or_origin_is_refused_on_loopback(env: dict[str, Any]) -> None:
    server = env["server"]
    auth = {"Authorization": f"Bearer {KEY}"}
    rebinding = httpx.get(f"{server.url}/v1/models", headers={**auth, "Host": "attacker.example:80"})
    assert rebinding.status_code == 403 and rebinding.json()["error"]["code"] == "host_not_allowed"
    cross_site = admin_post(f"{server.url}/admin/reload", {}, headers={"Origin": "https://attacker.example"})
    assert cross_site.status_code == 403 and cross_site.json()["error"]["code"] == "origin_not_allowed"
    assert httpx.get(f"{server.url}/v1/models", headers={**auth, "Origin": "null"}).status_code == 403
    # loopback names and origins on any port are fine
    for host in ("localhost:1234", "127.0.0.1", f"[::1]:{server.port}"):
        assert httpx.get(f"{server.url}/v1/models", headers={**auth, "Host": host}).status_code == 200
    ok = httpx.get(f"{server.url}/v1/models", headers={**auth, "Origin": "http://localhost:3000"})
    assert ok.status_code == 200


def test_admin_is_off_by_default_and_cannot_start_without_its_key() -> None:
    spec = small_spec()
    assert spec.server.admin is False
    with pytest.raises(ConfigError, match="no admin key"):
        check_keys(small_spec(server={"admin": True}), ApiKeys([KEY]), ApiKeys(kind="admin key"))
    with pytest.raises(ConfigError, match="differ"):
        check_keys(small_spec(server={"admin": True}), ApiKeys([KEY]), ApiKeys([KEY], kind="admin key"))


# -- finding 2: bind rules and ports ----------------------------------------------------------------------------


def test_only_provable_loopback_binds_without_a_key() -> None:
    assert (
        is_loopback("127.0.0.1") and is_loopback("127.0.0.5") and is_loopback("::1") and is_loopback("[::1]")
    )
    assert is_loopback("localhost")  # resolves to loopback addresses only
    for host in ("", " ", "0.0.0.0", "::", "::ffff:127.0.0.1", "example.com", "10.0.0.1", "127.0.0.1.nip.io"):
        assert not is_loopback(host), host
    assert host_of("[::1]:80") == "::1" and host_of("Example.com:80") == "example.com"


def _spec_file(tmp_path: Path, **server: Any) -> Path:
    path = tmp_path / "e.yaml"
    data = {"specialists": [{"name": "a"}], "server": {"fallback": "error", **server}}
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize("host", ["", "::ffff:127.0.0.1"])
def test_cli_refuses_a_host_that_is_not_provably_loopback_without_a_key(
    host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CADRE_API_KEY", raising=False)
    result = CliRunner().invoke(cli_app, ["serve", str(_spec_file(tmp_path)), "--host", host, "--port", "0"])
    assert result.exit_code != 0 and "without an API key" in str(result.exception)


@pytest.mark.timeout(60)
def test_cli_rejects_an_invalid_port_and_a_taken_one_before_loading_models(tmp_path: Path) -> None:
    spec = str(_spec_file(tmp_path))
    result = CliRunner().invoke(cli_app, ["serve", spec, "--port", "70000"])
    assert result.exit_code != 0 and "not a TCP port" in str(result.exception)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli_app, ["serve", spec, "--port", str(port)])
        assert result.exit_code != 0 and "already in use" in str(result.exception)
        with pytest.raises(ConfigError, match="already in use"):
            bind_socket("127.0.0.1", port)
    admin = CliRunner().invoke(cli_app, ["serve", str(_spec_file(tmp_path, admin=True)), "--port", "0"])
    assert admin.exit_code != 0 and "no admin key" in str(admin.exception)


# -- finding 3: bounded metrics ----------------------------------------------------------------------------------


def test_unknown_paths_share_one_metrics_label(env: dict[str, Any]) -> None:
    server = env["server"]
    with httpx.Client() as c:
        for i in range(60):
            c.get(f"{server.url}/admin/x{i}")
            c.post(f"{server.url}/v1/y{i}")
            c.get(f"{server.url}/v1/models/m{i}")  # 401: no key
    text = httpx.get(f"{server.url}/metrics").text
    endpoints = set(re.findall(r'cadre_requests_total\{endpoint="([^"]*)"', text))
    assert "other" in endpoints and "/v1/models/{model_id}" in endpoints
    assert not any(re.search(r"/[xym]\d", e) for e in endpoints), endpoints
    assert len(endpoints) <= 12


# -- finding 7: no server paths in what clients see --------------------------------------------------------------


def test_model_notes_and_route_headers_show_no_absolute_server_paths(tmp_path: Path) -> None:
    from cadre.serve import parse_ecosystem

    data = small_spec().model_dump(mode="json")
    data["specialists"][0]["adapter"] = "adapters/support.gguf"  # not trained yet
    spec = parse_ecosystem(data, source="test", base_dir=tmp_path)
    with LiveServer(spec) as server:
        listing = httpx.get(f"{server.url}/v1/models").text
        chat = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "support", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
            timeout=60,
        )
    assert "adapters/support.gguf" in listing and "does not exist yet" in listing
    assert str(tmp_path) not in listing
    assert chat.status_code == 200 and str(tmp_path) not in chat.headers["x-cadre-reason"]
    assert str(tmp_path) not in chat.text
