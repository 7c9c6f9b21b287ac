#!/usr/bin/env bash
# Intake's benchmark, in one run on one machine: uploads of ~200 MB CONTACT and DEAL files
# on SQLite and PostgreSQL next to the raw load of the same rows (sqlite3 .import, COPY),
# the same upload on a store that already holds PREFILL records, and request-status
# throughput next to a trivial route. Prints a Markdown table. See BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

CONTACT_ROWS=${CONTACT_ROWS:-740000}
DEAL_ROWS=${DEAL_ROWS:-665000}
PREFILL=${PREFILL:-5000000}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
WRK_SECONDS=${WRK_SECONDS:-10}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/intake-bench.XXXXXX)}
mkdir -p "$WORK"

install_if_missing() { # command package
  command -v "$1" >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null; }
}
install_if_missing sqlite3 sqlite3
install_if_missing wrk wrk
install_if_missing psql postgresql-client
install_if_missing curl curl

cargo build --release -q -p intake-cli
BIN=$PWD/target/release/intake
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }

echo "generating data in $WORK" >&2
[ -s "$WORK/contact.ldjson" ] || "$BIN" gen --type CONTACT --count "$CONTACT_ROWS" --seed 1 --output "$WORK/contact.ldjson"
[ -s "$WORK/deal.ldjson" ] || "$BIN" gen --type DEAL --count "$DEAL_ROWS" --seed 2 --output "$WORK/deal.ldjson"
for t in contact deal; do
  [ -s "$WORK/$t.csv" ] || python3 bench/ldjson_to_csv.py 1 < "$WORK/$t.ldjson" > "$WORK/$t.csv"
done

source bench/server.sh
peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$SERVER_PID/status"; }

# upload FILE TYPE CRID ROWS -> sets T201 TDONE RATE
upload() {
  local t0 t1 t2 status
  t0=$(now)
  curl -sf -u "$KEY:$SECRET" -F "dataFile=@$1" \
    "$URL/v2/crm/entities?integrationId=$ID&objectType=$2&clientRequestId=$3" > /dev/null
  t1=$(now)
  while :; do
    status=$(curl -sf -u "$KEY:$SECRET" "$URL/v2/crm/request-status?integrationId=$ID&clientRequestId=$3" \
      | python3 -c "import json,sys;print(json.load(sys.stdin)['status'])")
    [ "$status" = DONE ] || [ "$status" = FAILED ] && break
    sleep 0.05
  done
  t2=$(now)
  T201=$(calc "round($t1-$t0,2)"); TDONE=$(calc "round($t2-$t1,2)"); RATE=$(calc "int($4/($t2-$t1))")
}

# wait_merged DB -> TMERGE: how long until the recent tier of version keys is merged
# into the main one (the server does it when idle; SQLite only).
wait_merged() {
  local t0 left; t0=$(now)
  while :; do
    left=$(sqlite3 -readonly "$1" "SELECT recent_keys FROM version_key_tiers" 2>/dev/null || echo busy)
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  TMERGE=$(calc "round($(now)-$t0,2)")
}

ROWS=()
row() { ROWS+=("| $* |"); echo "| $* |" >&2; }

VERSIONS_DDL="(integration_id BIGINT NOT NULL, object_type SMALLINT NOT NULL, object_id TEXT NOT NULL,
  modified BIGINT NOT NULL, seq BIGINT NOT NULL, line BIGINT NOT NULL, deleted SMALLINT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (integration_id, object_type, object_id, modified, seq))"

raw_sqlite() { # csv rows -> RAW_RATE
  rm -f "$WORK/raw.db"*
  sqlite3 "$WORK/raw.db" "PRAGMA journal_mode=WAL; CREATE TABLE raw $VERSIONS_DDL WITHOUT ROWID;" > /dev/null
  local t0 t1; t0=$(now)
  sqlite3 "$WORK/raw.db" -cmd "PRAGMA synchronous=NORMAL" ".mode csv" ".import $1 raw"
  t1=$(now); RAW_RATE=$(calc "int($2/($t1-$t0))")
}

raw_postgres() { # csv rows -> RAW_RATE
  local db=intake_bench_raw
  psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" > /dev/null
  local url=${PG_ADMIN%/*}/$db
  psql -q "$url" -c "CREATE TABLE raw $VERSIONS_DDL" > /dev/null
  local t0 t1; t0=$(now)
  psql -q "$url" -c "\\copy raw FROM '$1' CSV" > /dev/null
  t1=$(now); RAW_RATE=$(calc "int($2/($t1-$t0))")
  psql -q "$PG_ADMIN" -c "DROP DATABASE $db" > /dev/null
}

fresh_pg() { # name -> PG_URL
  psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" > /dev/null
  PG_URL=${PG_ADMIN%/*}/$1
}

row "backend | file | rows | MB | to 201 (s) | 201 → DONE (s) | records/s | key merge after DONE (s) | records/s counting the merge | raw load records/s | ratio | peak RSS (MB)"
row "--- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | ---"
declare -A EMPTY_RATE EMPTY_RATE_MERGED
for backend in sqlite postgres; do
  for t in contact deal; do
    T=${t^^}; rows=$([ $t = contact ] && echo "$CONTACT_ROWS" || echo "$DEAL_ROWS")
    mb=$(calc "round($(stat -c %s "$WORK/$t.ldjson")/1e6)")
    if [ $backend = sqlite ]; then
      start_server "s-$t" "sqlite://$WORK/s-$t/intake.db"; raw_load=raw_sqlite
    else
      fresh_pg intake_bench_$t; start_server "p-$t" "$PG_URL"; raw_load=raw_postgres
    fi
    upload "$WORK/$t.ldjson" "$T" "bench-$t" "$rows"
    if [ $backend = sqlite ]; then
      wait_merged "$WORK/s-$t/intake.db"; merged_rate=$(calc "int($rows/($TDONE+$TMERGE))")
    else
      TMERGE="–"; merged_rate="–"
    fi
    rss=$(peak_rss_mb); stop_server
    $raw_load "$WORK/$t.csv" "$rows"
    EMPTY_RATE[$backend-$t]=$RATE; EMPTY_RATE_MERGED[$backend-$t]=$merged_rate
    row "$backend | $T | $rows | $mb | $T201 | $TDONE | $RATE | $TMERGE | $merged_rate | $RAW_RATE | $(calc "round($RATE/$RAW_RATE,2)") | $rss"
  done
done

# The same CONTACT upload on a store that already holds PREFILL records.
echo "prefilling $PREFILL records" >&2
start_server s-prefill "sqlite://$WORK/s-prefill/intake.db"
chunk=625000; files=$(( (PREFILL + chunk - 1) / chunk ))
for k in $(seq 0 $((files - 1))); do
  [ -s "$WORK/prefill-$k.ldjson" ] || "$BIN" gen --type CONTACT --count $chunk --seed $((100 + k)) --output "$WORK/prefill-$k.ldjson"
done
# Back to back, so that merges done while idle are counted too.
t0=$(now); n=0
for k in $(seq 0 $((files - 1))); do
  upload "$WORK/prefill-$k.ldjson" CONTACT "prefill-$k" $chunk
  n=$((n + chunk))
done
wait_merged "$WORK/s-prefill/intake.db"
prefill_time=$(calc "round($(now)-$t0,1)")
PREFILL_NOTE="Prefill: $n records in $files back-to-back uploads took $prefill_time s from the first upload to the end of the last merge ($(calc "int($n/$prefill_time)") records/s; the last merge ended $TMERGE s after the last DONE)."
echo "$PREFILL_NOTE" >&2
upload "$WORK/contact.ldjson" CONTACT bench-after-prefill "$CONTACT_ROWS"
# While that upload's keys are merged, one-line uploads every 0.1 s: how long their 201 waits.
head -1 "$WORK/contact.ldjson" > "$WORK/one.ldjson"
(
  max=0; k=0
  while [ "$(sqlite3 -readonly "$WORK/s-prefill/intake.db" "SELECT recent_keys > 0 FROM version_key_tiers" 2>/dev/null || echo 1)" = 1 ]; do
    k=$((k + 1))
    t=$(curl -sf -o /dev/null -w '%{time_total}' -u "$KEY:$SECRET" -F "dataFile=@$WORK/one.ldjson" \
      "$URL/v2/crm/entities?integrationId=$ID&objectType=CONTACT&clientRequestId=probe-$k")
    max=$(calc "max($max,$t)"); sleep 0.1
  done
  echo "$max $k" > "$WORK/probe.out"
) &
probe=$!
wait_merged "$WORK/s-prefill/intake.db"; merged_rate=$(calc "int($CONTACT_ROWS/($TDONE+$TMERGE))")
wait $probe; read -r probe_max probe_count < "$WORK/probe.out"
PROBE_NOTE="During the merge after the upload to the 5M store, $probe_count one-line uploads got their 201 in at most $(calc "round($probe_max,2)") s."
echo "$PROBE_NOTE" >&2
ratio=$(calc "round($RATE/${EMPTY_RATE[sqlite-contact]},2)")
merged_ratio=$(calc "round($merged_rate/${EMPTY_RATE_MERGED[sqlite-contact]},2)")
row "sqlite, $PREFILL stored | CONTACT | $CONTACT_ROWS | | $T201 | $TDONE | $RATE | $TMERGE | $merged_rate | empty store: ${EMPTY_RATE[sqlite-contact]} (${EMPTY_RATE_MERGED[sqlite-contact]} counting the merge) | $ratio ($merged_ratio counting the merge) | $(peak_rss_mb)"

# request-status throughput next to /health, 64 connections, from a second process.
AUTH=$(printf '%s:%s' "$KEY" "$SECRET" | base64 -w0)
status_rps=$(wrk -t2 -c64 -d"${WRK_SECONDS}s" -H "Authorization: Basic $AUTH" \
  "$URL/v2/crm/request-status?integrationId=$ID&clientRequestId=bench-after-prefill" | awk '/Requests\/sec/ {print int($2)}')
health_rps=$(wrk -t2 -c64 -d"${WRK_SECONDS}s" "$URL/health" | awk '/Requests\/sec/ {print int($2)}')
stop_server
echo >&2
row "request-status | | | | | | $status_rps req/s | | | /health: $health_rps req/s | $(calc "round($status_rps/$health_rps,2)") |"

# The same on PostgreSQL, for information (the target names SQLite): PostgreSQL keeps one
# index over every version.
fresh_pg intake_bench_prefill; start_server p-prefill "$PG_URL"
t0=$(now)
for k in $(seq 0 $((files - 1))); do upload "$WORK/prefill-$k.ldjson" CONTACT "prefill-$k" $chunk; done
PG_PREFILL_NOTE="PostgreSQL prefill: $n records took $(calc "round($(now)-$t0,1)") s."
echo "$PG_PREFILL_NOTE" >&2
upload "$WORK/contact.ldjson" CONTACT bench-after-prefill "$CONTACT_ROWS"
row "postgres, $PREFILL stored | CONTACT | $CONTACT_ROWS | | $T201 | $TDONE | $RATE | – | – | empty store: ${EMPTY_RATE[postgres-contact]} | $(calc "round($RATE/${EMPTY_RATE[postgres-contact]},2)") | $(peak_rss_mb)"
stop_server
psql -q "$PG_ADMIN" -c "DROP DATABASE intake_bench_prefill WITH (FORCE)" > /dev/null

echo
echo "Machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r); $(date -u +%F)"
echo
printf '%s\n' "${ROWS[@]}"
echo
echo "$PREFILL_NOTE"
echo "$PROBE_NOTE"
echo "$PG_PREFILL_NOTE"
