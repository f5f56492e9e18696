#!/usr/bin/env bash
# The crates' walls: each workspace crate may depend only on crates of a lower layer, and
# each of the three crates that reach hardware or state is used by exactly one of ours.
# A wall that is crossed fails here (CI: scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --locked --format-version 1 | python3 -c '
import json, sys
# Lowest first. Tests (signet-e2e) may use any crate and are not in the list.
layers = [["signet-pki", "signet-config"], ["signet-hsm"], ["signet-state"], ["signet-services"], ["signet"], ["signet-ctl"]]
# The one crate of ours allowed to use each of these.
sole_user = {"cryptoki": "signet-hsm", "tss-esapi": "signet-config", "rusqlite": "signet-state"}
level = {name: i for i, names in enumerate(layers) for name in names}
meta = json.load(sys.stdin)
ours = {p["id"]: p for p in meta["packages"] if p["id"] in meta["workspace_members"]}
failed = []
for p in ours.values():
    name = p["name"]
    for dep in p["dependencies"]:
        if dep["kind"] == "dev":
            continue
        d = dep["name"]
        if name in level and d in level and level[d] >= level[name] and d != name:
            failed.append(f"{name} (layer {level[name]}) depends on {d} (layer {level[d]}): a wall crossed")
        if d in sole_user and name != sole_user[d] and name != "signet-e2e":
            failed.append(f"{name} uses {d}, which only {sole_user[d]} may use")
missing = [n for n in level if n not in {p["name"] for p in ours.values()}]
failed += [f"layer crate {n} not in the workspace" for n in missing]
for f in failed:
    print(f, file=sys.stderr)
sys.exit(1 if failed else 0)
'
echo "layers hold: signet-pki/signet-config <- signet-hsm <- signet-state <- signet-services <- signet (signetd) <- signet-ctl (signetctl)"
