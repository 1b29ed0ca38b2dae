#!/usr/bin/env python3
"""Checks that Cargo.toml's `rust-version` is at least every locked dependency's.

A `cargo +<msrv> check` would be the real test, but CI has only the one toolchain it ships
with; this catches the usual way an MSRV goes stale: `cargo update` locking a crate that
needs a newer compiler. (Our own code's use of newer std APIs is caught by clippy's
`incompatible_msrv` lint, which reads the same `rust-version`.)

    cargo metadata --format-version 1 --locked | scripts/check_msrv.py
"""

import json
import sys


def version(text):
    """'1.89' or '1.89.0' -> (1, 89, 0)."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    metadata = json.load(sys.stdin)
    members = set(metadata["workspace_members"])
    ours = [p for p in metadata["packages"] if p["id"] in members]
    deps = [p for p in metadata["packages"] if p["id"] not in members and p.get("rust_version")]
    failed = False
    for package in ours:
        declared = package.get("rust_version")
        if not declared:
            print(f"{package['name']}: Cargo.toml states no rust-version")
            failed = True
            continue
        newest = max(deps, key=lambda p: version(p["rust_version"]), default=None)
        needing_more = [p for p in deps if version(p["rust_version"]) > version(declared)]
        for p in sorted(needing_more, key=lambda p: version(p["rust_version"]), reverse=True):
            print(f"{p['name']} {p['version']} needs Rust {p['rust_version']}")
        if needing_more:
            print(f"{package['name']}: rust-version {declared} is below what Cargo.lock needs")
            failed = True
        elif newest is not None:
            print(
                f"{package['name']}: rust-version {declared} covers every locked dependency "
                f"(highest: {newest['name']} {newest['version']} needs {newest['rust_version']})"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
