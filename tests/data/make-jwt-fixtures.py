"""Writes tokens signed by PyJWT as JSON on stdout (run through ./make-jwt-fixtures, which
pins PyJWT 2.10.1 and the cryptography it signs with).

Each case has the key file's text as an operator would write it (a shared secret with its
trailing newline, or a PEM public key), the realm's algorithms, the token, the time the tests
check it at (`now`, between its `iat` and `exp`), and the email it must yield.
"""

import json
import secrets

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

IAT = 1_796_000_000
CLAIMS = {"email": "iago@zulip.com", "iat": IAT, "exp": IAT + 300}


def public_pem(private_key):
    return (
        private_key.public_key()
        .public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        .decode()
    )


cases = []
secret = secrets.token_urlsafe(32)
for alg in ["HS256", "HS384", "HS512"]:
    cases.append(
        {
            "alg": alg,
            "key_file": secret + "\n",
            "token": jwt.encode(CLAIMS, secret, algorithm=alg),
        }
    )
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
for alg in ["RS256", "PS256"]:
    cases.append(
        {"alg": alg, "key_file": public_pem(rsa_key), "token": jwt.encode(CLAIMS, rsa_key, algorithm=alg)}
    )
ec_key = ec.generate_private_key(ec.SECP256R1())
cases.append(
    {"alg": "ES256", "key_file": public_pem(ec_key), "token": jwt.encode(CLAIMS, ec_key, algorithm="ES256")}
)
ed_key = ed25519.Ed25519PrivateKey.generate()
cases.append(
    {"alg": "EdDSA", "key_file": public_pem(ed_key), "token": jwt.encode(CLAIMS, ed_key, algorithm="EdDSA")}
)
for case in cases:
    case.update({"now": IAT + 10, "email": CLAIMS["email"]})
json.dump(
    {"made_by": f"PyJWT {jwt.__version__}", "claims": CLAIMS, "cases": cases},
    __import__("sys").stdout,
    indent=1,
)
print()
