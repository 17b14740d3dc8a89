#!/usr/bin/env bash
# Refreshes the JSON schemas in this folder from the packages named in README.md. Only the
# package registries are used (npm, PyPI): `npm pack` and `pip download --no-deps`.
#
#   bash deploy/schemas/refresh.sh                    # the versions below
#   DCLINT=3.2.0 K8S_VALIDATE=1.38.0 K8S=1.38.0 bash deploy/schemas/refresh.sh
#
# Then run the check: cargo test -p xchange-cli --test cli deployment
set -euo pipefail

DCLINT="${DCLINT:-3.1.0}"               # npm package dclint: ships the Compose Specification schema
K8S_VALIDATE="${K8S_VALIDATE:-1.37.0}"  # PyPI package kubernetes-validate: per-version schemas
K8S="${K8S:-1.37.0}"                    # which Kubernetes version's schemas to take from it

here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "dclint@$DCLINT" >/dev/null && mkdir dclint && tar xzf "dclint-$DCLINT.tgz" -C dclint)
cp "$tmp/dclint/package/schemas/compose.schema.json" "$here/compose-spec.json"

pip download --quiet --no-deps -d "$tmp" "kubernetes-validate==$K8S_VALIDATE"
mkdir "$tmp/kv"
python3 -m zipfile -e "$tmp"/kubernetes_validate-"$K8S_VALIDATE"-*.whl "$tmp/kv"
src="$tmp/kv/kubernetes_validate/kubernetes-json-schema/v$K8S-local-strict"
dst="$here/kubernetes/v$K8S-local-strict"
rm -rf "$here"/kubernetes/v*-local-strict
mkdir -p "$dst"
kinds="service-v1 statefulset-apps-v1 poddisruptionbudget-policy-v1 secret-v1"
for kind in $kinds; do cp "$src/$kind.json" "$dst/"; done

# The kinds' files refer to /api/_definitions.json (1.8 MB, every type of the API). Keep only
# the definitions the four kinds reach, each as the package has it, in the package's order.
python3 - "$src" "$dst" $kinds <<'EOF'
import json, sys

src, dst, kinds = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(f"{src}/_definitions.json", encoding="utf-8") as f:
    whole = json.load(f)
defs = whole["$defs"]
# The kinds say "/api/_definitions.json#/$defs/NAME"; the definitions say "#/$defs/NAME".
prefix = "#/$defs/"


def refs(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and prefix in value:
                found.add(value.split(prefix, 1)[1])
            else:
                refs(value, found)
    elif isinstance(node, list):
        for value in node:
            refs(value, found)


todo = set()
for kind in kinds:
    with open(f"{src}/{kind}.json", encoding="utf-8") as f:
        refs(json.load(f), todo)
reached = set()
while todo:
    name = todo.pop()
    if name not in reached:
        reached.add(name)
        refs(defs[name], todo)
whole["$defs"] = {name: body for name, body in defs.items() if name in reached}
with open(f"{dst}/_definitions.json", "w", encoding="utf-8") as f:
    json.dump(whole, f, indent=2, ensure_ascii=False)
    f.write("\n")
print(f"kept {len(reached)} of {len(defs)} definitions")
EOF
du -ch "$here/compose-spec.json" "$dst"/*.json | tail -1
