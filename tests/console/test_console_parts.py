"""The console's parts without a browser: cookies over TLS, sessions ending, routes that must declare a role, the
lineage picture's geometry, and the stylesheet's contrast."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from lethe.api import Role, TokenStore, create_app
from lethe.console.lineage_picture import MAX_SHOWN, lineage_picture
from lethe.console.pages_session import STYLESHEET
from lethe.console.routing import ConsoleRoute
from lethe.console.sessions import IDLE, SessionStore
from lineage.impact import AdapterRef, BlastRadius, DatasetRef, DeploymentRef
from tests.lethe.test_api import app_settings, make_tokens


@pytest.fixture
def client(tmp_path, neo4j_settings):
    """The app over HTTPS (as behind a TLS proxy), with a token of each role; no page here asks the graph."""
    settings = app_settings(tmp_path, neo4j_settings)
    tokens = make_tokens(settings.state_dir / "api-tokens.json")
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        yield client, tokens, settings


def _sign_in(client, token: str):
    form = client.get("/console/sign-in")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    return client.post("/console/sign-in", data={"token": token, "csrf_token": csrf}, follow_redirects=False)


def test_over_tls_the_session_cookie_is_secure_and_a_revoked_token_ends_the_session(client):
    client, tokens, settings = client
    answer = _sign_in(client, tokens[Role.LEGAL])
    cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie" and v.startswith("lethe_console="))
    assert {"HttpOnly", "Secure", "SameSite=strict", "Path=/console"} <= {p.strip() for p in cookie.split(";")}
    assert client.get("/console/legal").status_code == 200
    path = settings.state_dir / "api-tokens.json"
    path.write_text(json.dumps({d: e for d, e in json.loads(path.read_text()).items() if e["role"] != "legal"}))
    gone = client.get("/console/legal", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/console/sign-in"


def test_pages_forbid_framing_and_load_only_themselves_and_stay_out_of_the_openapi_document(client):
    client, tokens, _ = client
    page = client.get("/console/sign-in")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "script-src" not in policy
    assert "<script" not in page.text
    assert not [p for p in client.app.openapi()["paths"] if p.startswith("/console")]


def test_a_session_ends_after_its_idle_time():
    store = SessionStore()
    session = store.start("0" * 64)
    assert store.get(session.id) is session
    session.seen -= IDLE + timedelta(seconds=1)
    assert store.get(session.id) is None and len(store) == 0
    assert not session.csrf_matches(None) and not session.csrf_matches("x") and session.csrf_matches(session.csrf)


def test_a_page_without_a_role_cannot_be_built():
    from fastapi import APIRouter

    with pytest.raises(ValueError, match="declares no role"):
        APIRouter(route_class=ConsoleRoute).get("/console/open")(lambda: None)


def test_the_lineage_picture_has_a_column_per_kind_and_caps_each_column():
    records = [(f"r{i}", "s0") for i in range(MAX_SHOWN + 3)]
    blast = BlastRadius(start="subject", records=len(records), depth_limit=8, shards=["s0"],
                        datasets=[DatasetRef(id="d:1")], runs=["run-0"],
                        adapters=[AdapterRef(id="a0", state="active"), AdapterRef(id="m0", state="superseded")],
                        deployments=[DeploymentRef(id="bot")], record_shard=records, shard_dataset=[("s0", "d:1")],
                        run_shard=[("run-0", "s0")], run_adapter=[("run-0", "a0")], adapter_merged=[("a0", "m0")],
                        adapter_deployment=[("m0", "bot")])
    picture = lineage_picture(blast)
    assert [c.title for c in picture.columns] == ["records", "shards", "dataset versions", "fine-tune runs",
                                                  "adapters", "merged adapters", "deployments"]
    assert len(picture.columns[0].nodes) == MAX_SHOWN and picture.columns[0].hidden == 3
    assert [n.muted for n in picture.columns[5].nodes] == [True]
    assert len(picture.links) == MAX_SHOWN + 5  # drawn records → shard, shard → dataset → run → a0 → m0 → bot
    assert all(link.x1 < link.x2 for link in picture.links)
    assert picture.width >= picture.columns[-1].x + picture.box_w


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_text_colours_have_at_least_aa_contrast_on_their_backgrounds():
    colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6})", STYLESHEET.read_text()))
    pairs = [("ink", "paper"), ("muted", "paper"), ("muted", "wash"), ("accent", "paper"), ("accent", "wash"),
             ("late", "late-wash"), ("soon", "soon-wash"), ("ok", "ok-wash"), ("ink", "late-wash"),
             ("ink", "soon-wash")]
    for text, background in pairs:
        a, b = sorted((_luminance(colours[text]), _luminance(colours[background])), reverse=True)
        assert (a + 0.05) / (b + 0.05) >= 4.5, (text, background)


def test_the_demo_ends_with_the_consoles_address_and_a_working_token_per_role(tmp_path):
    from lethe.cli.demo import print_console_access
    from lethe.cli.render import console
    from lethe.settings import Settings

    settings = Settings(LETHE_STATE_DIR=tmp_path / "state")
    with console.capture() as first:
        tokens = print_console_access(settings, "LETHE_PEPPER_FILE=/p")
    again = print_console_access(settings, "LETHE_PEPPER_FILE=/p")
    text = first.get()
    assert "http://127.0.0.1:8000/console" in text and "lethe api serve --port 8000" in text
    assert f"LETHE_STATE_DIR={tmp_path / 'state'} LETHE_PEPPER_FILE=/p" in text
    store = TokenStore.load(settings.state_dir / "api-tokens.json")
    for role in Role:
        assert f"{role.value:<9} {tokens[role]}" in text
        assert store.authenticate(tokens[role]) is None  # the next demo run revoked them
        assert store.authenticate(again[role]).role is role
    assert len(store) == 3


def _multipart(csrf: str, size: int) -> tuple[bytes, str]:
    """A verify form's body with a bundle file of `size` bytes, and its content type."""
    head = (f'--b0undary\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{csrf}\r\n--b0undary\r\n'
            'Content-Disposition: form-data; name="bundle"; filename="big.bundle.json"\r\n'
            "Content-Type: application/json\r\n\r\n").encode()
    return head + b" " * size + b"\r\n--b0undary--\r\n", "multipart/form-data; boundary=b0undary"


def _streamed(body: bytes):
    """The body in 1 MiB pieces with no Content-Length (chunked), so only its stream can pass the limit."""
    return (body[i:i + 2**20] for i in range(0, len(body), 2**20))


def _assert_too_large_page(answer, role: str | None, limit: str) -> str:
    assert answer.status_code == 413 and answer.headers["content-type"].startswith("text/html"), answer.text[:200]
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    html = answer.text
    assert "<title>Too large · Lethe console</title>" in html and 'href="/console/static/console.css"' in html
    shown = re.search(r'id="role">([a-z]+)<', html)
    assert (shown.group(1) if shown else None) == role
    message = re.search(r'<p class="problems" role="alert">([^<]+)</p>', html).group(1)
    assert f"up to {limit}" in message or f"more than {limit}" in message, message
    assert "Nothing" in message and "again" in message, message  # nothing kept, and what to do
    return message


def test_a_form_over_its_limit_is_a_console_page_with_the_role_and_the_api_keeps_its_json(client):
    client, tokens, _ = client
    _sign_in(client, tokens[Role.AUDITOR])
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/auditor/verify").text).group(1)
    for size in (17 * 2**20, 34 * 2**20):  # a file over 16 MiB in an allowed body (read); a body over 33 MiB (unread)
        body, kind = _multipart(csrf, size)
        answer = client.post("/console/auditor/verify", content=body, headers={"Content-Type": kind})
        message = _assert_too_large_page(answer, "auditor", "16 MiB")
        assert "attestation bundle" in message
    streamed = client.post("/console/auditor/verify", content=_streamed(body), headers={"Content-Type": kind})
    assert "content-length" not in streamed.request.headers
    assert _assert_too_large_page(streamed, "auditor", "16 MiB") == message
    client.cookies.clear()  # signed out: the same page, with no role and a way to sign in
    signed_out = client.post("/console/legal/file", data={"note": "x" * 2**21})
    _assert_too_large_page(signed_out, None, "1 MiB")
    assert 'href="/console/sign-in"' in signed_out.text
    for content in (b"{" + b" " * 2**21 + b"}", _streamed(b"{" + b" " * 2**21 + b"}")):
        api = client.post("/v1/requests", content=content, headers={
            "Authorization": f"Bearer {tokens[Role.LEGAL]}", "Content-Type": "application/json"})
        assert api.status_code == 413 and api.headers["content-type"] == "application/json", api.text[:200]
        assert api.json() == {"detail": "the body is over 1 MiB; an erasure request is a few identifiers"}


def test_before_the_first_attestation_the_registry_is_missing_alike_in_the_api_and_the_console(client):
    client, tokens, _ = client
    api = client.get("/v1/keys", headers={"Authorization": f"Bearer {tokens[Role.AUDITOR]}"})
    missing = "no key registry yet: it is created with the signing keys at the first attestation"
    assert api.status_code == 404 and api.json() == {"detail": missing}
    _sign_in(client, tokens[Role.AUDITOR])
    download = client.get("/console/auditor/keys.json")
    assert download.status_code == 404 and download.headers["content-type"].startswith("text/html")
    assert missing in download.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/auditor/verify").text).group(1)
    body, kind = _multipart(csrf, 10)
    verify = client.post("/console/auditor/verify", content=body, headers={"Content-Type": kind})
    assert verify.status_code == 404 and f"{missing}; upload the registry the signer published" in verify.text
