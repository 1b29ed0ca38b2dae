#!/usr/bin/env python3
"""Signs an inbox POST with RFC 9421 HTTP Message Signatures using the Python
`http-message-signatures` package (PyPI, independent of inboxguard's code) and prints the
request headers as JSON. Used by tests/rfc9421.rs.

Covers what Mastodon requires (@method, @target-uri, content-digest) plus @authority, with
`created`, `keyid` and `alg`; the library computes Content-Digest (sha-256) from the body.

usage: rfc9421_sign.py ALG PRIVATE_KEY_PEM KEY_ID URL BODY_FILE
       ALG is rsa-v1_5-sha256, rsa-pss-sha512 or ed25519
"""
import json
import sys
from dataclasses import dataclass, field

from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

ALGORITHMS = {
    "rsa-v1_5-sha256": algorithms.RSA_V1_5_SHA256,
    "rsa-pss-sha512": algorithms.RSA_PSS_SHA512,
    "ed25519": algorithms.ED25519,
}


class Headers(dict):
    """A case-preserving header dict with the interface the library asks for."""


@dataclass
class Request:
    method: str
    url: str
    headers: Headers = field(default_factory=Headers)


def main() -> None:
    alg, key_file, key_id, url, body_file = sys.argv[1:6]
    with open(key_file, "rb") as f:
        private_pem = f.read()
    with open(body_file, "rb") as f:
        body = f.read()
    request = Request(method="POST", url=url)
    request.headers["Content-Type"] = "application/activity+json"
    signer = HTTPMessageSigner(
        signature_algorithm=ALGORITHMS[alg],
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: private_pem}),
    )
    signer.sign(
        request,
        key_id=key_id,
        label="sig1",
        covered_component_ids=("@method", "@target-uri", "@authority"),
        body=body,
    )
    json.dump(dict(request.headers), sys.stdout)


if __name__ == "__main__":
    main()
