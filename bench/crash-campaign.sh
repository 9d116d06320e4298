#!/usr/bin/env bash
# Crash campaign: start `ptactors simulate` on a fresh SQLite file with --ack-log, kill it with SIGKILL at a random
# moment of its run, then `ptactors verify --ack-log` the database. Repeats N times and prints one line per kill and a summary:
# kills, operations acknowledged (in the ack logs), operations lost (acknowledged but not in the journal), verify
# failures. Usage: bench/crash-campaign.sh [N] [extra simulate options...]   (build first: dotnet build -c Release)
set -uo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}; shift || true
cli=${PTACTORS_DLL:-src/Cli/bin/Release/net10.0/ptactors.dll}
[ -f "$cli" ] || { echo "build first: dotnet build PtActors.sln -c Release" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kills=0; acked=0; lost=0; failures=0; completed=0; early=0
formats=(x86_64 amdv1 vtdss riscv64)
policies=(lazy strict batch:32 lazy-single)
for i in $(seq 1 "$n"); do
  db="$work/c$i.db"; ack="$work/c$i.ack"
  seed=$((RANDOM * 32768 + RANDOM))
  fmt=${formats[$((RANDOM % 4))]}; pol=${policies[$((RANDOM % 4))]}
  # Kill at a random moment 0-5 s after the run started (the ack log gets its run header once the run is in the
  # registry, before anything is acknowledged); start-up (3-10 s here) is not part of the lottery.
  delay_ms=$((RANDOM % 5000))
  dotnet "$cli" simulate --db "$db" --run-id "crash$i" --seed "$seed" --format "$fmt" --policy "$pol" \
    --ops 1000000 --ack-log "$ack" "$@" >"$work/sim$i.out" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null && [ ! -s "$ack" ]; do sleep 0.01; done
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; kills=$((kills + 1)); else completed=$((completed + 1)); fi
  wait "$pid" 2>/dev/null
  if [ ! -f "$db" ]; then echo "kill $i: after ${delay_ms} ms, before the database existed"; continue; fi
  if [ ! -s "$ack" ] && ! dotnet "$cli" runs --db "$db" 2>/dev/null | grep -q "^crash$i "; then
    # Killed during start-up, before the run was in the registry: nothing of it was written or acknowledged.
    echo "kill $i: ${delay_ms} ms, before the run was recorded"; early=$((early + 1))
    rm -f "$db" "$db-wal" "$db-shm" "$ack"; continue
  fi
  acklog=(); [ -f "$ack" ] && acklog=(--ack-log "$ack")   # killed before the log was opened: nothing was acknowledged
  out=$(dotnet "$cli" verify --db "$db" "${acklog[@]}" 2>&1); rc=$?
  line=$(echo "$out" | grep "^crash$i " | head -1)
  a=$(echo "$line" | sed -n 's/.* acked_checked=\([0-9]*\).*/\1/p'); m=$(echo "$line" | sed -n 's/.* acked_missing=\([0-9]*\).*/\1/p')
  acked=$((acked + ${a:-0})); lost=$((lost + ${m:-0}))
  [ "$rc" -eq 0 ] || failures=$((failures + 1))
  echo "kill $i: ${delay_ms} ms format=$fmt policy=$pol seed=$seed verify_rc=$rc acked=${a:-0} lost=${m:-0} $(echo "$line" | awk '{print $2, $NF}')"
  [ "$rc" -eq 0 ] || echo "$out" | sed 's/^/    /'
  rm -f "$db" "$db-wal" "$db-shm" "$ack"
done
echo "kills=$kills before_recorded=$early completed_before_kill=$completed ops_acknowledged=$acked ops_lost=$lost verify_failures=$failures"
