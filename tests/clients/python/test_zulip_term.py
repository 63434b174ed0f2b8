"""zulip-term 0.7.0's own login functions against a running zulip-auth (ZULIP_SITE).

run.fetch_zuliprc() is never called: with answers that fail it loops forever."""

import getpass
import os
import stat

from zulipterminal.cli import run

SITE = os.environ["ZULIP_SITE"]
EMAIL, PASSWORD = "iago@example.com", "Correct-Horse-9"


def answer(monkeypatch, password, labels):
    monkeypatch.setattr(run, "styled_input", lambda label: (labels.append(label), EMAIL)[1])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": password)


def test_get_api_key_right_password(monkeypatch):
    labels = []
    answer(monkeypatch, PASSWORD, labels)
    response, login_id = run.get_api_key(SITE)
    assert response.status_code == 200
    assert len(response.json()["api_key"]) == 32
    assert login_id == EMAIL
    # require_email_format_usernames true, email_auth_enabled true: it asks for an email.
    assert labels == ["Email: "]


def test_get_api_key_wrong_password(monkeypatch):
    answer(monkeypatch, "wrong", [])
    response, _ = run.get_api_key(SITE)
    assert response.status_code == 401
    assert response.json()["code"] == "AUTHENTICATION_FAILED"


def test_write_zuliprc(tmp_path):
    path = tmp_path / "zuliprc"
    key = "K" * 32
    assert run._write_zuliprc(str(path), login_id=EMAIL, api_key=key, server_url=SITE) == ""
    assert path.read_text() == f"[api]\nemail={EMAIL}\nkey={key}\nsite={SITE}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
