#!/usr/bin/env bash
# CLI start-up, measured side by side in one run against a bare `python -c 'import typer'`:
# `agentfirm --help`, `tasks list`, `daemon status` and `costs ID`, first in-process
# (AGENTFIRM_NO_DAEMON=1, no daemon running: reads open the store in this process), then through
# a running daemon. With hyperfine installed it times each phase (medians); else each round runs
# every command of a phase once, the order rotating from round to round so a busy spell on a
# shared machine hits them alike. Prints medians of N rounds and their ratios to the baseline
# (goal: each <= 2.5x).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
N=${N:-11}
home=$(mktemp -d /tmp/afbench.XXXXXX)  # short: the daemon's socket path is limited to ~100 bytes
trap '"$PY" -m agentfirm daemon stop >/dev/null 2>&1 || true; rm -rf "$home"' EXIT
export AGENTFIRM_HOME=$home NO_COLOR=1 AGENTFIRM_OFFLINE=1
# Byte-compiled first, as pip does at install: with PYTHONDONTWRITEBYTECODE set and an editable
# install, every run would compile agentfirm's modules from source, which no user pays.
"$PY" -m compileall -q agentfirm daemon tui >/dev/null

run_ms() {  # wall time in ms of one run of the command given (output discarded)
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null 2>&1
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}

median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }

# A task with a ledger, made once outside the timing, for `costs ID`.
task=$("$PY" -m agentfirm run "Size the market for electric cargo bikes in Lyon" \
  --offline --yes --json --no-daemon 2>/dev/null | "$PY" -c \
  'import json, sys; print(json.load(sys.stdin)["task_id"])')

phase() {  # phase TITLE NAME=COMMAND... : rounds over the named commands, then the table
  local title=$1
  shift
  if command -v hyperfine >/dev/null; then
    hyperfine_phase "$title" "$@"
    return
  fi
  local names=() cmds=() k r
  for spec in "$@"; do
    names+=("${spec%%=*}")
    cmds+=("${spec#*=}")
  done
  local count=${#cmds[@]}
  declare -A times=()
  for ((r = 0; r < N; r++)); do
    for ((k = 0; k < count; k++)); do
      local i=$(((k + r) % count))
      times[$i]+="$(eval "run_ms ${cmds[$i]}") "
    done
  done
  echo "$title ($N rounds, order rotating)"
  local base
  # shellcheck disable=SC2086
  base=$(median ${times[0]})
  for ((i = 0; i < count; i++)); do
    local ms
    # shellcheck disable=SC2086
    ms=$(median ${times[$i]})
    printf '  %-34s %6s ms  %s\n' "${names[$i]}" "$ms" \
      "$("$PY" -c "print(f'{$ms / $base:.2f}x')")"
  done
}

hyperfine_phase() {  # the same table, timed by hyperfine (no shell: -N)
  local title=$1 json
  shift
  json=$(mktemp /tmp/afbench.XXXXXX.json)
  local names=() cmds=()
  for spec in "$@"; do
    names+=("${spec%%=*}")
    cmds+=("${spec#*=}")
  done
  hyperfine -N --style none --warmup 2 --runs "$N" --export-json "$json" "${cmds[@]}" >/dev/null
  echo "$title ($N runs each, hyperfine)"
  NAMES=$(printf '%s\n' "${names[@]}") "$PY" - "$json" <<'EOF2'
import json, os, statistics, sys
names = os.environ["NAMES"].splitlines()
times = [statistics.median(r["times"]) * 1000 for r in json.load(open(sys.argv[1]))["results"]]
for name, ms in zip(names, times):
    print(f"  {name:<34} {ms:6.0f} ms  {ms / times[0]:.2f}x")
EOF2
  rm -f "$json"
}

af="$PY -m agentfirm"
export AGENTFIRM_NO_DAEMON=1
phase "in-process (AGENTFIRM_NO_DAEMON=1)" \
  "python -c 'import typer'=$PY -c 'import typer'" \
  "agentfirm --help=$af --help" \
  "agentfirm tasks list --json=$af tasks list --json" \
  "agentfirm daemon status=$af daemon status" \
  "agentfirm costs ID --json=$af costs $task --json"
unset AGENTFIRM_NO_DAEMON
$af daemon start >/dev/null
phase "through a running daemon" \
  "python -c 'import typer'=$PY -c 'import typer'" \
  "agentfirm tasks list --json=$af tasks list --json" \
  "agentfirm daemon status=$af daemon status" \
  "agentfirm costs ID --json=$af costs $task --json"
echo "goal: each <= 2.5x python -c 'import typer'; load: $(uptime | sed 's/.*load/load/')"
