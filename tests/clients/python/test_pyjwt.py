"""A token signed by PyJWT, the library Zulip's jwt/fetch_api_key uses, is accepted over HTTP
(wire.md §17), and its key works for users/me. The realm's shared secret is in the file that
ZULIP_JWT_KEY_FILE names."""

import os
import time

import jwt
import zulip

SITE = os.environ["ZULIP_SITE"]
EMAIL = "iago@example.com"


def client(email="placeholder@example.com", api_key="placeholder"):
    return zulip.Client(email=email, api_key=api_key, site=SITE, client="zulip-auth-ci",
                        retry_on_errors=False)


def secret():
    with open(os.environ["ZULIP_JWT_KEY_FILE"]) as f:
        return f.read().strip()


def test_pyjwt_token_gives_a_working_key():
    token = jwt.encode({"email": EMAIL, "exp": int(time.time()) + 60}, secret(),
                       algorithm="HS256")
    ok = client().call_endpoint(url="jwt/fetch_api_key", method="POST",
                                request={"token": token, "include_profile": "true"})
    assert ok["result"] == "success", ok
    assert ok["email"] == EMAIL and "user_id" not in ok
    assert ok["user"]["delivery_email"] == EMAIL
    me = client(EMAIL, ok["api_key"]).get_profile()
    assert me["result"] == "success" and me["user_id"] == ok["user"]["user_id"]


def test_pyjwt_token_with_another_secret_is_bad():
    token = jwt.encode({"email": EMAIL, "exp": int(time.time()) + 60}, "not the secret",
                       algorithm="HS256")
    bad = client().call_endpoint(url="jwt/fetch_api_key", method="POST",
                                 request={"token": token})
    assert (bad["result"], bad["msg"]) == ("error", "Bad JSON web token")
