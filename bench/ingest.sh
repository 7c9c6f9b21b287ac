#!/usr/bin/env bash
# The bench's 200 MB CONTACT upload on an empty store, by several builds in turn in one run
# (BENCHMARKS.md, "Fifth round" of the associations): for each, records/s to DONE, how long
# the first association asked right after DONE takes (it waits for the look-up keys), the
# rate counting that, and the server's peak RSS.
#
#   BINS="base:/path/to/old/intake new:target/release/intake" bash bench/ingest.sh
#
# BACKENDS="sqlite postgres", ROUNDS=1, BENCH_DIR (the generated file is kept there),
# CONTACT_ROWS=740000. A build from before the associations answers them 404 (shown).
set -uo pipefail
cd "$(dirname "$0")/.."
WORK=${BENCH_DIR:-/tmp/intake-ingest}; ROWS=${CONTACT_ROWS:-740000}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
mkdir -p "$WORK"
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }
BIN=${BINS##*:}
[ -s "$WORK/contact.ldjson" ] || "$BIN" gen --type CONTACT --count "$ROWS" --seed 1 --output "$WORK/contact.ldjson"
source bench/server.sh
for _ in $(seq "${ROUNDS:-1}"); do
  for backend in ${BACKENDS:-sqlite postgres}; do
    for spec in $BINS; do
      name=${spec%%:*}; BIN=${spec#*:}
      if [ "$backend" = sqlite ]; then
        start_server "i-$name" "sqlite://$WORK/i-$name/intake.db"
      else
        psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS intake_ingest_$name WITH (FORCE)" \
          -c "CREATE DATABASE intake_ingest_$name" > /dev/null 2>&1
        start_server "i-$name" "${PG_ADMIN%/*}/intake_ingest_$name"
      fi
      curl -sf -u "$KEY:$SECRET" -F "dataFile=@$WORK/contact.ldjson" \
        "$URL/v2/crm/entities?integrationId=$ID&objectType=CONTACT&clientRequestId=ingest" > /dev/null
      t1=$(now)
      while :; do
        st=$(curl -sf -u "$KEY:$SECRET" "$URL/v2/crm/request-status?integrationId=$ID&clientRequestId=ingest" \
          | python3 -c "import json,sys;print(json.load(sys.stdin)['status'])")
        [ "$st" = DONE ] || [ "$st" = FAILED ] && break
        sleep 0.05
      done
      t2=$(now)
      code=$(curl -s -o /dev/null -w '%{http_code}' -u "$KEY:$SECRET" -H 'content-type: application/json' \
        "$URL/intake/v1/associations?integrationId=$ID" \
        -d '{"startTime":"2024-05-01T10:00:00Z","timing":"Now","parties":[{"emailAddress":"nobody@example.com"}]}')
      t3=$(now)
      rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$SERVER_PID/status")
      stop_server
      echo "$backend $name: $st at $(calc "int($ROWS/($t2-$t1))") records/s; first association" \
        "$(calc "round($t3-$t2,2)") s later ($code); counting it $(calc "int($ROWS/($t3-$t1))") records/s;" \
        "peak RSS ${rss} MB; load $(cut -d' ' -f1 /proc/loadavg)"
      [ "$backend" = postgres ] && psql -q "$PG_ADMIN" -c "DROP DATABASE intake_ingest_$name WITH (FORCE)" > /dev/null
      rm -rf "${WORK:?}/i-$name"
    done
  done
done
