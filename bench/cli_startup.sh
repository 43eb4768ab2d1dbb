#!/usr/bin/env bash
# CLI start-up, measured side by side in one run: `agentfirm --help` and `agentfirm tasks list
# --json` (read from the store, then through a running daemon) against a bare
# `python -c 'import typer'`. Prints medians of N runs and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
N=${N:-15}
home=$(mktemp -d /tmp/afbench.XXXXXX)  # short: the daemon's socket path is limited to ~100 bytes
trap '"$PY" -m agentfirm daemon stop >/dev/null 2>&1 || true; rm -rf "$home"' EXIT
export AGENTFIRM_HOME=$home NO_COLOR=1

median_ms() {  # median wall time in ms of N runs of the command given
  local times=()
  for _ in $(seq "$N"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    times+=($(((t1 - t0) / 1000000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((N + 1) / 2))p"
}

"$PY" -m agentfirm tasks list --json >/dev/null  # create the home once, outside the timing
base=$(median_ms "$PY" -c 'import typer')
help=$(median_ms "$PY" -m agentfirm --help)
list=$(median_ms "$PY" -m agentfirm tasks list --json)
printf '%-34s %6s ms\n' "python -c 'import typer'" "$base"
ratio() { "$PY" -c "print(f'{$1 / $2:.2f}x')"; }
printf '%-34s %6s ms  %s\n' "agentfirm --help" "$help" "$(ratio "$help" "$base")"
printf '%-34s %6s ms  %s\n' "agentfirm tasks list --json" "$list" "$(ratio "$list" "$base")"
"$PY" -m agentfirm daemon start >/dev/null
remote=$(median_ms "$PY" -m agentfirm tasks list --json)
printf '%-34s %6s ms  %s\n' "  … through a running daemon" "$remote" "$(ratio "$remote" "$base")"
