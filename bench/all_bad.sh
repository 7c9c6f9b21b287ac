#!/usr/bin/env bash
# Errors of every line: a 750,000-line CONTACT file whose every line is bad (intake gen
# --invalid-ratio 1), uploaded to `intake serve` ($BIN, release build) on an empty SQLite
# store; prints the processing time (startedAt to finishedAt of the request), the lines per
# second, the server's CPU seconds and bytes written while it ran, and its peak resident
# memory (VmHWM). Run it with two binaries to
# compare: BIN=/path/to/intake bash bench/all_bad.sh; PERF_OUT=FILE also records a profile.
set -euo pipefail
BIN=${BIN:-target/release/intake}
WORK=${BENCH_DIR:-$(mktemp -d)}
LINES=${LINES:-750000}
mkdir -p "$WORK"
. "$(dirname "$0")/server.sh"
FILE="$WORK/all-bad-$LINES.ldjson"
[ -s "$FILE" ] || "$BIN" gen --type CONTACT --count "$LINES" --seed 7 --invalid-ratio 1 -o "$FILE"
start_server allbad "sqlite://$WORK/allbad/intake.db"
# The server's CPU seconds (user + system) and bytes written to storage, read before and
# after: on a shared machine they vary far less than the wall-clock time.
cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' /proc/$SERVER_PID/stat; }
written() { awk '/^write_bytes/ {print $2}' /proc/$SERVER_PID/io; }
CPU0=$(cpu); W0=$(written)
# PERF_OUT=FILE records a profile of the server while the file is uploaded and processed.
PERF_PID=
if [ -n "${PERF_OUT:-}" ]; then
  perf record -q -g -p "$SERVER_PID" -o "$PERF_OUT" 2>/dev/null & PERF_PID=$!
  sleep 0.5
fi
curl -sf -u "$KEY:$SECRET" -F "dataFile=@$FILE" \
  "$URL/v2/crm/entities?integrationId=$ID&objectType=CONTACT&clientRequestId=allbad" > /dev/null
while :; do
  S=$(curl -sf -u "$KEY:$SECRET" "$URL/v2/crm/request-status?integrationId=$ID&clientRequestId=allbad")
  case "$S" in *'"DONE"'*|*'"FAILED"'*) break;; esac
  sleep 0.05
done
R=$(curl -sf -u "$KEY:$SECRET" "$URL/intake/v1/requests/allbad")
CPU1=$(cpu); W1=$(written)
if [ -n "$PERF_PID" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; fi
HWM=$(awk '/VmHWM/ {print $2}' /proc/$SERVER_PID/status)
python3 - "$R" "$HWM" "$(stat -c %s "$FILE")" "$CPU0" "$CPU1" "$W0" "$W1" <<'PY'
import json, sys, datetime
r = json.loads(sys.argv[1])["request"]
t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
secs = (t(r["finishedAt"]) - t(r["startedAt"])).total_seconds()
print(f"lines {r['totalErrorCount']} errors, file {int(sys.argv[3])/1e6:.0f} MB, processing {secs:.2f} s, "
      f"{r['totalErrorCount']/secs:,.0f} lines/s, server CPU {float(sys.argv[5]) - float(sys.argv[4]):.2f} s, "
      f"written {(int(sys.argv[7]) - int(sys.argv[6]))/1e6:.0f} MB, peak RSS {int(sys.argv[2])/1024:.0f} MiB")
PY
if curl -sf -u "$KEY:$SECRET" -H 'Accept: application/x-ndjson' "$URL/intake/v1/requests/allbad/errors" -o "$WORK/errors.ldjson"; then
  echo "errors streamed: $(wc -l < "$WORK/errors.ldjson") lines; peak RSS after streaming $(( $(awk '/VmHWM/ {print $2}' /proc/$SERVER_PID/status) / 1024 )) MiB"
fi
stop_server
