"""Wycheproof's JsonWebSignature cases, rebuilt with this suite's own keys.

No PyPI package ships Project Wycheproof's ``json_web_signature_test.json``
and the network is closed, so each of its test classes is written here again
(the names are Wycheproof's ``comment`` strings): structural defects, ``none``,
JSON serialization, symmetric confusion, embedded JWKs, modified PKCS #1 v1.5
padding, ECDSA and EdDSA signature defects. The payload is a valid claim set
for this gateway, so the one defect is the JWS defect; every case but
``acceptsValid`` must be refused with 401.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from tests.demo_env import call
from tests.identity.conftest import Sso
from tests.identity.idp import IdentityProvider, SigningKey, rsa_key

pytestmark = pytest.mark.anyio
SHA256_OID = bytes.fromhex("0609608648016503040201")
SHA1_OID = bytes.fromhex("06052b0e03021a")
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parts(token: str) -> tuple[str, str, str]:
    h, p, s = token.split(".")
    return h, p, s


def flip(text: str) -> str:
    return ("B" if text[0] != "B" else "C") + text[1:]


def structural(idp: IdentityProvider, key: SigningKey) -> dict[str, str]:
    """Wycheproof's structural cases for one key."""
    token = idp.sign(key=key)
    h, p, s = parts(token)
    other = b64(json.dumps({**idp.claims(), "sub": "bob-sub"}).encode())
    header = json.loads(unb64(h))
    public = key.private.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    signing = f"{b64(json.dumps({'alg': 'HS256', 'kid': key.kid}).encode())}.{p}"
    attacker = rsa_key(key.kid)
    return {
        "acceptsValid": token,
        "rejectsModifiedSignature": f"{h}.{p}.{flip(s)}",
        "rejectsMissingSignature": f"{h}.{p}.",
        "rejectsMissingSignatureAndSeparator": f"{h}.{p}",
        "rejectsModifiedPayload": f"{h}.{other}.{s}",
        "rejectsMissingPayload": f"{h}..{s}",
        "rejectsMissingPayloadAndSeparator": f"{h}.{s}",
        "rejectsModifiedHeader": f"{b64(json.dumps({**header, 'kid': 'X' + key.kid[1:]}).encode())}.{p}.{s}",
        "rejectsModifiedHeaderExtraField": f"{b64(json.dumps({**header, 'typ': 'JWT'}).encode())}.{p}.{s}",
        "rejectsMissingHeader": f".{p}.{s}",
        "rejectsMissingHeaderAndSeparator": f"{p}.{s}",
        "rejectsMissingHeaderAndSignature": f".{p}.",
        "rejectsMissingHeaderSignatureAndSeparators": p,
        "rejectsEmptyString": "",
        "rejectsExtraEmptyComponent": f"{token}.",
        "rejectsExtraComponent": f"{token}.foo",
        "rejectsNoneAlgorithmAndMissingSignature":
            f"{b64(json.dumps({'alg': 'none', 'kid': key.kid}).encode())}.{p}.",
        "rejectsValidJsonSerialization": json.dumps(
            {"payload": p, "signatures": [{"protected": h, "header": {"unknown": "x"},
                                           "signature": s}]}),
        "rejectsSymmetryConfusionAttacks_hmacKeyFromVerificationKeyBytes":
            f"{signing}.{b64(hmac.new(public, signing.encode(), hashlib.sha256).digest())}",
        "rejectsAttackerProvidedEmbeddedJwk": jwt.encode(
            idp.claims(), attacker.private, algorithm="RS256",
            headers={"kid": key.kid, "jwk": attacker.public_jwk()}),
    }


def _rsa_sign_encoded(key: rsa.RSAPrivateKey, encoded: bytes) -> bytes:
    """Raw RSA over a hand-made encoded message: the way a bad padding gets signed."""
    numbers = key.private_numbers()
    n, size = numbers.public_numbers.n, (key.key_size + 7) // 8
    return pow(int.from_bytes(encoded, "big"), numbers.d, n).to_bytes(size, "big")


def _emsa(size: int, digest_info: bytes, *, block: bytes = b"\x01", fill: bytes = b"\xff") -> bytes:
    pad = size - 3 - len(digest_info)
    return b"\x00" + block + fill * pad + b"\x00" + digest_info


def rsa_padding(idp: IdentityProvider, key: SigningKey) -> dict[str, str]:
    """Wycheproof's ModifiedPadding and bad-value cases for RS256."""
    h, p, _ = parts(idp.sign(key=key))
    digest = hashlib.sha256(f"{h}.{p}".encode()).digest()
    size = (key.private.key_size + 7) // 8
    n = key.private.public_key().public_numbers().n
    infos = {
        "acceptsValid_handMadePadding": b"\x30\x31\x30\x0d" + SHA256_OID + b"\x05\x00\x04\x20",
        "missingNull": b"\x30\x2f\x30\x0b" + SHA256_OID + b"\x04\x20",
        "longFormLength": b"\x30\x81\x31\x30\x0d" + SHA256_OID + b"\x05\x00\x04\x20",
        "wrongHashOid": b"\x30\x2d\x30\x09" + SHA1_OID + b"\x05\x00\x04\x20",
        "wrongTagForSequence": b"\x31\x31\x30\x0d" + SHA256_OID + b"\x05\x00\x04\x20",
        "truncatedHash": b"\x30\x30\x30\x0d" + SHA256_OID + b"\x05\x00\x04\x1f",
    }
    cases = {}
    for name, info in infos.items():
        body = info + (digest[:31] if name == "truncatedHash" else digest)
        cases[name] = _rsa_sign_encoded(key.private, _emsa(size, body))
    prefix = b"\x30\x31\x30\x0d" + SHA256_OID + b"\x05\x00\x04\x20"
    appended = b"\x30\x33\x30\x0d" + SHA256_OID + b"\x05\x00\x04\x20" + digest + b"\x00\x00"
    cases["appendZero"] = _rsa_sign_encoded(key.private, _emsa(size, appended))
    cases["blockType2"] = _rsa_sign_encoded(key.private, _emsa(size, prefix + digest, block=b"\x02"))
    cases["paddingNotFF"] = _rsa_sign_encoded(key.private, _emsa(size, prefix + digest, fill=b"\xfe"))
    garbage = b"\x00\x01\xff\xff\x00" + b"\x42" * (size - 5 - len(prefix) - 32) + prefix + digest
    cases["hashNotAtTheEnd_shortPadding"] = _rsa_sign_encoded(key.private, garbage)
    good = _rsa_sign_encoded(key.private, _emsa(size, prefix + digest))
    cases["signatureWithLeadingZero"] = b"\x00" + good
    cases["signatureEqualsModulus"] = n.to_bytes(size, "big")
    cases["signatureZero"] = bytes(size)
    cases["signatureOne"] = (1).to_bytes(size, "big")
    cases["signatureTruncated"] = good[:-1]
    return {f"rs256_{name}": f"{h}.{p}.{b64(sig)}" for name, sig in cases.items()}


def ecdsa_defects(idp: IdentityProvider, key: SigningKey) -> dict[str, str]:
    """ES256 signature defects: DER instead of r||s, zero, out of range, swapped, truncated."""
    h, p, s = parts(idp.sign(key=key))
    raw = unb64(s)
    r, s_ = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    defects: dict[str, bytes] = {
        "derEncodedSignature": encode_dss_signature(r, s_),
        "rAndSZero": bytes(64),
        "sEqualsOrder": r.to_bytes(32, "big") + P256_ORDER.to_bytes(32, "big"),
        "rPlusOrder": (r + P256_ORDER).to_bytes(33, "big") + s_.to_bytes(32, "big"),
        "rAndSSwapped": s_.to_bytes(32, "big") + r.to_bytes(32, "big"),
        "truncated": raw[:-1],
        "extraByte": raw + b"\x00",
    }
    assert decode_dss_signature(defects["derEncodedSignature"]) == (r, s_)
    return {f"es256_{name}": f"{h}.{p}.{b64(sig)}" for name, sig in defects.items()}


def eddsa_defects(idp: IdentityProvider, key: SigningKey) -> dict[str, str]:
    """EdDSA signature defects: a flipped bit, s past the group order, truncated."""
    h, p, s = parts(idp.sign(key=key))
    raw = bytearray(unb64(s))
    flipped = bytes(raw[:10]) + bytes([raw[10] ^ 1]) + bytes(raw[11:])
    high = bytes(raw[:63]) + bytes([raw[63] | 0xF0])
    return {"eddsa_bitFlipped": f"{h}.{p}.{b64(flipped)}",
            "eddsa_sNotReduced": f"{h}.{p}.{b64(high)}",
            "eddsa_truncated": f"{h}.{p}.{b64(bytes(raw[:-1]))}"}


def all_cases(idp: IdentityProvider) -> dict[str, str]:
    rsa_, ec_, ed_ = idp.keys[0], idp.keys[1], idp.keys[2]
    cases: dict[str, str] = {}
    for key in (rsa_, ec_, ed_):
        cases.update({f"{key.alg}_{k}": v for k, v in structural(idp, key).items()})
    builders: list[Callable[[IdentityProvider, SigningKey], dict[str, str]]] = [rsa_padding]
    for build, key in zip([*builders, ecdsa_defects, eddsa_defects], (rsa_, ec_, ed_), strict=True):
        cases.update(build(idp, key))
    return cases


async def test_wycheproof_jws_cases(sso: Sso, sso_client: httpx.AsyncClient) -> None:
    wrong: dict[str, Any] = {}
    cases = all_cases(sso.idp)
    for name, token in cases.items():
        response = await call(sso_client, token, "get_customer_by_id", {"customer_id": 42})
        expected = 200 if "acceptsValid" in name else 401
        if response.status_code != expected:
            wrong[name] = (response.status_code, response.text[:160])
    assert wrong == {}
    assert sum("acceptsValid" in n for n in cases) == 4 and len(cases) > 80
