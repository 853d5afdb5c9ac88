#!/usr/bin/env python3
"""Moves one pin of toolchains/debian/packages.bzl to another version, for the CI tests.

    ci/move-pin.py PINS ENTRY VERSION POOL_PATH SHA256

Fails when ENTRY is missing or already at VERSION: a test that moves nothing proves nothing.
"""
import re
import sys

if len(sys.argv) != 6:
    sys.exit(__doc__)
pins, entry, version, pool_path, sha256 = sys.argv[1:]
text = open(pins).read()
found = re.search(r'"%s": \{.*?\}' % re.escape(entry), text, re.S)
if not found:
    sys.exit(f"move-pin: no entry {entry!r} in {pins}")
block = found.group(0)
if f'"version": "{version}"' in block:
    sys.exit(f"move-pin: {entry} is already at {version}; pick another version for this test")
moved = re.sub(r'"version": "[^"]*"', f'"version": "{version}"', block)
moved = re.sub(r'"path": "[^"]*"', f'"path": "{pool_path}"', moved)
moved = re.sub(r'"sha256": "[^"]*"', f'"sha256": "{sha256}"', moved)
open(pins, "w").write(text.replace(block, moved))
