"""PyPI zulip==0.9.1 against a running zulip-auth (ZULIP_SITE): urlencoded logins with the
placeholder Basic credentials every Client sends."""

import os

import zulip

SITE = os.environ["ZULIP_SITE"]
EMAIL, PASSWORD = "iago@example.com", "Correct-Horse-9"


def client(email="placeholder@example.com", api_key="placeholder"):
    # The constructor GETs server_settings with Basic auth and asserts zulip_version.
    return zulip.Client(email=email, api_key=api_key, site=SITE, client="zulip-auth-ci",
                        retry_on_errors=False)


def test_constructor_reads_server_settings():
    c = client()
    assert c.zulip_version == "10.0"
    assert c.feature_level == 371


def test_fetch_api_key_and_users_me():
    ok = client().call_endpoint(url="fetch_api_key", method="POST",
                                request={"username": EMAIL, "password": PASSWORD})
    assert ok["result"] == "success" and len(ok["api_key"]) == 32
    me = client(EMAIL, ok["api_key"]).get_profile()
    assert me["result"] == "success"
    assert me["user_id"] == ok["user_id"]
    assert me["email"] == EMAIL


def test_wrong_password():
    bad = client().call_endpoint(url="fetch_api_key", method="POST",
                                 request={"username": EMAIL, "password": "wrong"})
    assert bad["result"] == "error"
    assert bad["code"] == "AUTHENTICATION_FAILED"
