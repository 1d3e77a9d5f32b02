#!/usr/bin/env bash
# The main job, end to end, on a fresh machine: build NeuroShard, start a shard-server on
# loopback, version a model in a Git repository, push its chunks, clone the repository
# elsewhere, pull, check out, and verify the files are byte-identical.
#
# Everything happens under a temporary directory (its own daemon socket too), which is
# removed at the end unless KEEP=1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "building nshard, shardd and shard-server"
cargo build --quiet --manifest-path "$here/Cargo.toml" --workspace --bins
bin="$(cargo metadata --format-version 1 --no-deps --manifest-path "$here/Cargo.toml" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"
export PATH="$bin:$PATH"

work="$(mktemp -d /tmp/nshard-demo.XXXXXX)"
export SHARDD_SOCKET="$work/run/shardd.sock"
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.com
export GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.com
server_pid=""
cleanup() {
  nshard daemon stop >/dev/null 2>&1 || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

say "starting shard-server on 127.0.0.1 (storage in $work/server)"
shard-server --listen 127.0.0.1:0 --storage "$work/server" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 200); do
  url="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/server.log" | head -n 1 || true)"
  [ -n "$url" ] && break
  sleep 0.05
done
[ -n "$url" ] || { cat "$work/server.log"; echo "shard-server did not start"; exit 1; }
echo "shard-server at $url"

say "alice: a Git repository with a 64 MiB model"
mkdir -p "$work/alice/models" && cd "$work/alice"
git init -q
python3 - <<'PY'
import random
random.seed(7)
with open("models/resnet50.pth", "wb") as f:
    for _ in range(64):
        f.write(random.randbytes(1 << 20))
PY
nshard init
nshard git-init
nshard track 'models/*.pth'
nshard commit -m "Initial checkpoint"
nshard status
git add .gitignore .shardconfig models/resnet50.pth.shard.json
git commit -qm "Add resnet50 checkpoint"

say "alice: push the chunks to $url"
nshard push --remote "$url"

say "alice: fine-tune (1 MiB changed), commit v2, push only the new chunks"
python3 - <<'PY'
with open("models/resnet50.pth", "r+b") as f:
    f.seek(20 << 20)
    f.write(bytes(range(256)) * 4096)
PY
nshard diff models/resnet50.pth
nshard commit -m "Fine-tuned"
nshard push --remote "$url"
git commit -qam "Fine-tuned checkpoint"

say "bob: clone, pull, check out"
git clone -q "$work/alice" "$work/bob" && cd "$work/bob"
nshard status
nshard pull models/resnet50.pth.shard.json --remote "$url"
nshard checkout

say "verify: bob's model is byte-identical to alice's"
cmp "$work/alice/models/resnet50.pth" "$work/bob/models/resnet50.pth"
sha256sum "$work/alice/models/resnet50.pth" "$work/bob/models/resnet50.pth"
nshard verify
nshard verify --remote "$url"
nshard status
echo
echo "OK: the model travelled through shard-server and arrived byte-identical."
