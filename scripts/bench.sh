#!/usr/bin/env bash
# Bootstrap, then run the benchmark CLI:  scripts/bench.sh [fastsess bench args...]
# Runs in the caller's working directory, so relative paths in the arguments work.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

bash "$ROOT/scripts/bootstrap.sh"

CLI="$ROOT/.venv/bin/fastsess"
if [[ ! -x "$CLI" ]]; then
    echo "bench: $CLI not found: the 'fastsess' console script is not installed (is [project.scripts] fastsess defined in pyproject.toml?)" >&2
    exit 1
fi
exec "$CLI" bench "$@"
