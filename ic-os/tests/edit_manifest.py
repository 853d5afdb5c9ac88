"""Changes fields of an update manifest (JSON) for icos_test_signed: edit_manifest.py IN OUT PATH=VALUE...

PATH is dotted (`version`, `members.1.size`; numbers index lists); VALUE is JSON, or `+N` to add N
to a number. The output is written the way the release writes manifests (2-space indent, a final
newline), so only the edited fields differ."""
import json
import sys

src, out, *edits = sys.argv[1:]
with open(src) as f:
    doc = json.load(f)
for edit in edits:
    path, _, value = edit.partition("=")
    *parents, last = [int(k) if k.isdigit() else k for k in path.split(".")]
    node = doc
    for key in parents:
        node = node[key]
    if last not in (range(len(node)) if isinstance(node, list) else node):
        sys.exit(f"edit_manifest: {src} has no field {path}")
    node[last] = node[last] + int(value[1:]) if value.startswith("+") else json.loads(value)
with open(out, "w") as f:
    f.write(json.dumps(doc, indent=2) + "\n")
