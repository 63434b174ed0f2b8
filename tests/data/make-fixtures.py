"""Writes users as `zulip-auth user import` reads them, with password hashes made by the
real Django and argon2-cffi that Zulip runs, one JSON object per line on stdout.

Each line also has `_password`, the plaintext the hash was made from (import ignores unknown
keys), so the tests can log in with it. Run through ./make-fixtures, which pins the versions:

    current  Django 5.2 + argon2-cffi 25.1.0: argon2id with a 32-byte output, legacy argon2i
             (v=19 and v=16), PBKDF2, and unusable or unsupported hashes
    old      Django 5.2 + argon2-cffi 21.1.0: argon2id with a 16-byte output
"""

import hashlib
import json
import sys

import argon2
import django
from django.conf import settings

settings.configure(
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
)
django.setup()

from django.contrib.auth.hashers import (  # noqa: E402
    Argon2PasswordHasher,
    MD5PasswordHasher,
    PBKDF2PasswordHasher,
    make_password,
)


def line(email, password, hashed, **extra):
    print(json.dumps({"email": email, "full_name": email.split("@")[0], "password": hashed,
                      "is_active": True, **extra, "_password": password}))


def legacy_argon2i(password, version):
    """Django < 3.2 hashed with argon2i at m=512, t=2, p=2."""
    raw = argon2.low_level.hash_secret(password.encode(), b"legacysaltvalue1", time_cost=2, memory_cost=512,
                                       parallelism=2, hash_len=16, type=argon2.low_level.Type.I, version=version)
    return "argon2" + raw.decode()


mode = sys.argv[1]
if mode == "current":
    django_argon2 = Argon2PasswordHasher()
    line("argon2id-32@example.com", "Zulip-Argon2-32!", django_argon2.encode("Zulip-Argon2-32!", django_argon2.salt()),
         api_key="Kz1Ar9n2IdThirtyTwoBytesKey00001", role=200)
    line("argon2i-v19@example.com", "Legacy-Argon2i-19", legacy_argon2i("Legacy-Argon2i-19", 19))
    line("argon2i-v16@example.com", "Legacy-Argon2i-16", legacy_argon2i("Legacy-Argon2i-16", 16))
    pbkdf2 = PBKDF2PasswordHasher()
    line("pbkdf2@example.com", "Zulip-Pbkdf2-Sha256", pbkdf2.encode("Zulip-Pbkdf2-Sha256", pbkdf2.salt(), iterations=260000),
         api_key="PbKdF2UserKeyFromZulipServer0002")
    line("weak-pbkdf2@example.com", "abcd1234", pbkdf2.encode("abcd1234", pbkdf2.salt(), iterations=260000))
    line("deactivated@example.com", "Gone-But-Argon2",
         django_argon2.encode("Gone-But-Argon2", django_argon2.salt()), is_active=False)
    md5 = MD5PasswordHasher()
    line("md5@example.com", "Zulip-Dev-Md5", md5.encode("Zulip-Dev-Md5", md5.salt()))
    line("sha1@example.com", "Old-Sha1-Hash",
         "sha1$salt$" + hashlib.sha1(b"saltOld-Sha1-Hash").hexdigest())
    line("unusable@example.com", None, make_password(None))
    line("nopassword@example.com", None, None, role=600)
elif mode == "old":
    assert argon2.__version__ == "21.1.0", argon2.__version__
    django_argon2 = Argon2PasswordHasher()
    line("argon2id-16@example.com", "Zulip-Argon2-16!", django_argon2.encode("Zulip-Argon2-16!", django_argon2.salt()))
else:
    raise SystemExit(f"unknown mode {mode!r}")
