#!/usr/bin/env python3
"""Reads a Bazel execution log (--execution_log_json_file: a stream of JSON spawn objects).

    exec_log.py executed LOG    mnemonic of every spawn that ran (not served from a cache)
    exec_log.py cached LOG      mnemonic of every spawn served from the remote or disk cache
    exec_log.py outputs LOG     "MNEMONIC OUTPUT_BASENAME..." of every spawn that ran
"""
import json
import sys


def spawns(path):
    text = open(path).read()
    decoder, i = json.JSONDecoder(), 0
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        spawn, i = decoder.raw_decode(text, i)
        if spawn.get("mnemonic") != "BazelWorkspaceStatusAction":
            yield spawn


def main(mode, path):
    for spawn in spawns(path):
        mnemonic = spawn.get("mnemonic", "?")
        hit = spawn.get("remoteCacheHit", False)
        if mode == "executed" and not hit:
            print(mnemonic)
        elif mode == "cached" and hit:
            print(mnemonic)
        elif mode == "outputs" and not hit:
            names = [o["path"].rsplit("/", 1)[-1] for o in spawn.get("actualOutputs", [])]
            print(mnemonic, *names)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("executed", "cached", "outputs"):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
