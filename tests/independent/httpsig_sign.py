#!/usr/bin/env python3
"""Signs an inbox POST with the Python `httpsig` package (PyPI, independent of inboxguard's
code) and prints the request headers as JSON. Used by tests/independent_signer.rs.

usage: httpsig_sign.py PRIVATE_KEY_PEM KEY_ID HOST PATH BODY_FILE
"""
import base64
import email.utils
import hashlib
import json
import sys

from httpsig import HeaderSigner


def main() -> None:
    key_file, key_id, host, path, body_file = sys.argv[1:6]
    with open(key_file, "rb") as f:
        secret = f.read()
    with open(body_file, "rb") as f:
        body = f.read()
    digest = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    headers = {
        "Host": host,
        "Date": email.utils.formatdate(usegmt=True),
        "Digest": digest,
        "Content-Type": "application/activity+json",
    }
    signer = HeaderSigner(
        key_id,
        secret,
        algorithm="rsa-sha256",
        headers=["(request-target)", "host", "date", "digest", "content-type"],
        sign_header="signature",
    )
    signed = signer.sign(headers, host=host, method="POST", path=path)
    json.dump(dict(signed), sys.stdout)


if __name__ == "__main__":
    main()
