#!/usr/bin/env bash
# PostgreSQL at scale (issue 17), on a private cluster of its own so that its settings can
# be chosen and nobody else's tests share it: prefill a store with PREFILL CONTACT records
# (uploads of CHUNK, back to back, timed as records/s), then the ~200 MB CONTACT upload into
# that filled store and into an empty database of the same cluster (ratio), GET entities of
# 100 ids on the filled store (p50/p99 of GET_CALLS calls over keep-alive) and the disk used
# per stored record. Prints a Markdown table and notes. See BENCHMARKS.md ("PostgreSQL at
# scale").
#
# Knobs: SETTINGS=defaults|tuned (defaults: what initdb writes, as Debian's packages do:
# shared_buffers 128MB, max_wal_size 1GB, checkpoint_timeout 5min; tuned: the bulk-load
# settings README's "Operating Intake" recommends), PREFILL (5000000), CHUNK (625000),
# CONTACT_ROWS (740000, ~207 MB), GET_CALLS (300), PG_PORT (5499), PG_DIR (where the cluster
# lives; removed at the end unless KEEP_CLUSTER=1), BENCH_DIR (keeps the generated files;
# shares them with bench/run.sh), BIN (the intake binary; default: built here), SKIP_BUILD,
# EXTRA_PG (more `-c name=value` for the cluster), THREE=0 (skip the three companies'
# uploads on one instance and on three), ONLY_PREFILL=1 (stop after the prefill
# and keep the cluster running, for EXPLAIN and the migration).
set -euo pipefail
cd "$(dirname "$0")/.."

SETTINGS=${SETTINGS:-defaults}
PREFILL=${PREFILL:-5000000}
CHUNK=${CHUNK:-625000}
CONTACT_ROWS=${CONTACT_ROWS:-740000}
GET_CALLS=${GET_CALLS:-300}
PG_PORT=${PG_PORT:-5499}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/intake-pgscale.XXXXXX)}
PG_DIR=${PG_DIR:-$WORK/pg-$SETTINGS}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
mkdir -p "$WORK"

command -v psql >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq postgresql-client >/dev/null; }
if [ -z "${BIN:-}" ]; then
  [ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p intake-cli
  BIN=$PWD/target/release/intake
fi
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }

case $SETTINGS in
  defaults) PG_SETTINGS="" ;;
  # The bulk-load settings (README, "Operating Intake"): the hot pages of the indexes in
  # PostgreSQL's own cache, checkpoints far enough apart that a page is written whole to
  # the WAL once per checkpoint rather than once per batch, and those full-page images
  # compressed. synchronous_commit stays on: a batch's commit is its durability.
  tuned) PG_SETTINGS="-c shared_buffers=4GB -c effective_cache_size=12GB -c max_wal_size=16GB \
-c min_wal_size=2GB -c checkpoint_timeout=30min -c checkpoint_completion_target=0.9 \
-c wal_compression=lz4 -c wal_buffers=64MB -c maintenance_work_mem=1GB" ;;
  *) echo "SETTINGS is defaults or tuned" >&2; exit 2 ;;
esac

# The private cluster: initdb as the postgres user (PostgreSQL refuses to run as root).
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PG_ADMIN="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
start_cluster() {
  if [ ! -s "$PG_DIR/PG_VERSION" ]; then
    mkdir -p "$PG_DIR"; [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
    as_pg "$PG_BIN/initdb" -D "$PG_DIR" -U postgres --auth=trust > "$WORK/initdb-$SETTINGS.log"
  fi
  # shellcheck disable=SC2086
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w \
    -o "-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1 -c shared_preload_libraries=pg_stat_statements $PG_SETTINGS ${EXTRA_PG:-}" \
    start > /dev/null
  PG_PID=$(head -1 "$PG_DIR/postmaster.pid")
}
stop_cluster() { as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR" -m fast stop > /dev/null 2>&1 || true; }
fresh_db() { # name -> PG_URL
  psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" > /dev/null
  PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/$1"
}
q() { psql -qAt "$1" -c "$2"; } # url sql

# CPU seconds (user + system) of a process and of the whole cluster (postmaster and its
# children: backends, checkpointer, WAL writer, autovacuum).
# The postmaster's own fields 16+17 hold the CPU time of the children that have exited
# (a closed connection's backend).
cpu_of() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# (One awk over every process: a python call per process would add seconds per reading; a
# backend that exits meanwhile is skipped.)
cluster_cpu() {
  local files=() p
  for p in $(pgrep -P "$PG_PID"); do files+=("/proc/$p/stat"); done
  { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$PG_PID/stat"
    cat "${files[@]}" 2>/dev/null | awk '{ print $14 + $15 }'; } | awk '{ t += $1 } END { printf "%.2f", t / 100 }'
}
wal_lsn() { q "$PG_ADMIN" "SELECT pg_current_wal_lsn()"; }
wal_mb_since() { q "$PG_ADMIN" "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$1') / 1e6)"; }
checkpoints() { q "$PG_ADMIN" "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"; }

source bench/server.sh

# wait_merged URL -> TMERGE: how long until the recent tiers (migration 0012) are merged
# into the main tables (the server does it in the background); "–" without tiers.
wait_merged() {
  local t0; t0=$(now)
  if [ "$(q "$1" "SELECT to_regclass('version_tiers') IS NOT NULL")" != t ]; then TMERGE="–"; return; fi
  until [ "$(q "$1" "SELECT NOT (EXISTS (SELECT 1 FROM recent_versions_0) OR EXISTS (SELECT 1 FROM recent_versions_1) \
      OR EXISTS (SELECT 1 FROM recent_lookup_keys_0) OR EXISTS (SELECT 1 FROM recent_lookup_keys_1))")" = t ]; do
    sleep 0.1
  done
  TMERGE=$(calc "round($(now)-$t0,2)")
}
# merged_rate ROWS -> records/s counting the merge after DONE ("–" without tiers)
merged_rate() { if [ "$TMERGE" = "–" ]; then echo "–"; else calc "int($1/($TDONE+$TMERGE))"; fi; }

# upload FILE CRID ROWS -> T201 TDONE RATE SCPU (server CPU-s) PGCPU (cluster CPU-s) WALMB CKPTS
upload() {
  local t0 t1 t2 status c0 p0 w0 k0
  c0=$(cpu_of "$SERVER_PID"); p0=$(cluster_cpu); w0=$(wal_lsn); k0=$(checkpoints)
  t0=$(now)
  curl -sf -u "$KEY:$SECRET" -F "dataFile=@$1" \
    "$URL/v2/crm/entities?integrationId=$ID&objectType=CONTACT&clientRequestId=$2" > /dev/null
  t1=$(now)
  while :; do
    status=$(curl -sf -u "$KEY:$SECRET" "$URL/v2/crm/request-status?integrationId=$ID&clientRequestId=$2" \
      | python3 -c "import json,sys;print(json.load(sys.stdin)['status'])")
    [ "$status" = DONE ] || [ "$status" = FAILED ] && break
    sleep 0.05
  done
  t2=$(now)
  [ "$status" = DONE ] || { echo "upload $2 ended $status" >&2; exit 1; }
  T201=$(calc "round($t1-$t0,2)"); TDONE=$(calc "round($t2-$t1,2)"); RATE=$(calc "int($3/($t2-$t1))")
  SCPU=$(calc "round($(cpu_of "$SERVER_PID")-$c0,1)"); PGCPU=$(calc "round($(cluster_cpu)-$p0,1)")
  WALMB=$(wal_mb_since "$w0"); CKPTS=$(( $(checkpoints) - k0 ))
}

# get_latency IDS_FILE -> "p50 / p99 ms": GET entities of 100 ids, GET_CALLS calls on one
# keep-alive connection, each call 100 ids drawn from IDS_FILE.
get_latency() {
  python3 - "$URL" "$KEY" "$SECRET" "$ID" "$1" "$GET_CALLS" <<'EOF'
import base64, http.client, json, random, sys, time, urllib.parse
url, key, secret, integration, ids_file, calls = sys.argv[1:7]
ids = [l.strip() for l in open(ids_file) if l.strip()]
rng = random.Random(17)
u = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(u.hostname, u.port)
auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
path = f"/v2/crm/entities?integrationId={integration}&objectType=CONTACT"
times = []
for k in range(int(calls) + 10):
    body = json.dumps(rng.sample(ids, 100))
    t0 = time.perf_counter()
    conn.request("GET", path, body=body, headers={"Authorization": auth, "Content-Type": "application/json"})
    r = conn.getresponse(); data = r.read()
    dt = (time.perf_counter() - t0) * 1000
    assert r.status == 200, (r.status, data[:200])
    if k >= 10:  # ten warm-up calls
        times.append(dt)
times.sort()
p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(f"{p(0.5):.1f} / {p(0.99):.1f}")
EOF
}

echo "generating data in $WORK" >&2
[ -s "$WORK/contact.ldjson" ] || "$BIN" gen --type CONTACT --count "$CONTACT_ROWS" --seed 1 --output "$WORK/contact.ldjson"
files=$(( (PREFILL + CHUNK - 1) / CHUNK ))
for k in $(seq 0 $((files - 1))); do
  f=$WORK/prefill-$k.ldjson; [ "$CHUNK" = 625000 ] || f=$WORK/prefill-$CHUNK-$k.ldjson
  [ -s "$f" ] || "$BIN" gen --type CONTACT --count "$CHUNK" --seed $((100 + k)) --output "$f"
done
prefill_file() { if [ "$CHUNK" = 625000 ]; then echo "$WORK/prefill-$1.ldjson"; else echo "$WORK/prefill-$CHUNK-$1.ldjson"; fi; }

start_cluster
trap 'stop_server; [ -n "${ONLY_PREFILL:-}" ] || { stop_cluster; [ -n "${KEEP_CLUSTER:-}" ] || rm -rf "$PG_DIR"; }' EXIT
ROWS=(); NOTES=()
row() { ROWS+=("| $* |"); echo "| $* |" >&2; }
note() { NOTES+=("$*"); echo "$*" >&2; }
row "store | upload | rows | to 201 (s) | 201 → DONE (s) | records/s | merge after DONE (s) | records/s counting the merge | server CPU-s | PostgreSQL CPU-s | WAL MB | checkpoints | load average"
row "--- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | ---"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# 1. The CONTACT upload into an empty database of this cluster.
if [ -z "${ONLY_PREFILL:-}" ]; then
  fresh_db intake_empty; start_server pg-empty "$PG_URL"
  upload "$WORK/contact.ldjson" empty "$CONTACT_ROWS"
  EMPTY_RATE=$RATE; wait_merged "$PG_URL"; EMPTY_MERGED=$(merged_rate "$CONTACT_ROWS")
  row "empty | CONTACT | $CONTACT_ROWS | $T201 | $TDONE | $RATE | $TMERGE | $EMPTY_MERGED | $SCPU | $PGCPU | $WALMB | $CKPTS | $(loadavg)"
  stop_server
  psql -q "$PG_ADMIN" -c "DROP DATABASE intake_empty WITH (FORCE)" > /dev/null
fi

# 2. Three companies' CONTACT uploads: all three sent to one instance, whose worker takes
#    them one after another; then, on a fresh database, each sent to its own instance of
#    three sharing the database and a spool directory, processed at once. Timed from the
#    first upload to the last DONE.
launch_instance() { # name database-url spool-dir -> SERVER_PID, URL
  local dir="$WORK/$1"; rm -rf "$dir"; mkdir -p "$dir"
  INTAKE_SPOOL_DIR=$3 "$BIN" serve --listen 127.0.0.1:0 --data-dir "$dir" --database "$2" \
    --rate-limit-per-second 0 --rate-limit-per-day 0 --intake-rate-limit-per-second 0 \
    > "$dir/stdout" 2> "$dir/stderr" &
  SERVER_PID=$!
  for _ in $(seq 300); do grep -q '^listening on' "$dir/stdout" 2>/dev/null && break; sleep 0.1; done
  URL=$(sed -n 's/^listening on //p' "$dir/stdout")
}
# companies DATABASE-URL DATA-DIR -> CREDS: "key secret" of companies c1..c3 (made here)
companies() {
  CREDS=()
  for c in 1 2 3; do
    "$BIN" admin company create "c$c" --database "$1" --data-dir "$2" > /dev/null
    CREDS+=("$("$BIN" admin key create --company "c$c" --json --database "$1" --data-dir "$2" \
      | python3 -c "import json,sys;d=json.load(sys.stdin);print(d['accessKey'],d['accessKeySecret'])")")
  done
}
# three_uploads URL1 URL2 URL3 -> T3 (s from the first upload to the last DONE)
three_uploads() {
  local urls=("$@") ids=() t0 c key secret
  for c in 0 1 2; do
    read -r key secret <<< "${CREDS[$c]}"
    ids+=("$(curl -sf -u "$key:$secret" -X PUT "${urls[$c]}/v2/crm/integrations" -H 'content-type: application/json' \
      -d '{"name":"bench","ownerEmail":"bench@example.com"}' | python3 -c "import json,sys;print(json.load(sys.stdin)['integrationId'])")")
  done
  t0=$(now)
  for c in 0 1 2; do
    read -r key secret <<< "${CREDS[$c]}"
    curl -sf -u "$key:$secret" -F "dataFile=@$WORK/contact.ldjson" \
      "${urls[$c]}/v2/crm/entities?integrationId=${ids[$c]}&objectType=CONTACT&clientRequestId=three" > /dev/null
  done
  for c in 0 1 2; do
    read -r key secret <<< "${CREDS[$c]}"
    until [ "$(curl -sf -u "$key:$secret" "${urls[$c]}/v2/crm/request-status?integrationId=${ids[$c]}&clientRequestId=three" \
      | python3 -c "import json,sys;print(json.load(sys.stdin)['status'])")" = DONE ]; do sleep 0.05; done
  done
  T3=$(calc "round($(now)-$t0,2)")
}
if [ -z "${ONLY_PREFILL:-}" ] && [ "${THREE:-1}" != 0 ]; then
  fresh_db intake_three_one; companies "$PG_URL" "$WORK/three-admin"
  launch_instance three-one "$PG_URL" "$WORK/three-spool-1"
  la=$(loadavg); three_uploads "$URL" "$URL" "$URL"; one_after_another=$T3
  wait_merged "$PG_URL"; one_merged=$(calc "round($T3+${TMERGE/–/0},2)")
  stop_server
  fresh_db intake_three_at_once; companies "$PG_URL" "$WORK/three-admin"
  PIDS=(); URLS=()
  for i in 1 2 3; do launch_instance "three-$i" "$PG_URL" "$WORK/three-spool-3"; PIDS+=("$SERVER_PID"); URLS+=("$URL"); done
  SERVER_PID=
  three_uploads "${URLS[@]}"; at_once=$T3
  wait_merged "$PG_URL"; at_once_merged=$(calc "round($T3+${TMERGE/–/0},2)")
  for p in "${PIDS[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
  note "Three companies' $CONTACT_ROWS-row CONTACT uploads ($SETTINGS): one instance, one after another, $one_after_another s to the last DONE ($one_merged s with the merges after it; load $la); three instances at once, $at_once s ($at_once_merged s; load $(loadavg)): $(calc "round($one_after_another/$at_once,2)") × the speed."
  psql -q "$PG_ADMIN" -c "DROP DATABASE intake_three_one WITH (FORCE)" -c "DROP DATABASE intake_three_at_once WITH (FORCE)" > /dev/null
  rm -rf "$WORK"/three-*
fi

# 3. The prefill, back to back.
fresh_db intake_scale; start_server pg-scale "$PG_URL"
t0=$(now); n=0; c0=$(cpu_of "$SERVER_PID"); p0=$(cluster_cpu); w0=$(wal_lsn)
for k in $(seq 0 $((files - 1))); do
  upload "$(prefill_file "$k")" "prefill-$k" "$CHUNK"
  n=$((n + CHUNK))
  row "prefill $((k + 1))/$files | CONTACT | $CHUNK | $T201 | $TDONE | $RATE | | | $SCPU | $PGCPU | $WALMB | $CKPTS | $(loadavg)"
done
wait_merged "$PG_URL"
prefill_s=$(calc "round($(now)-$t0,1)")
note "Prefill ($SETTINGS): $n records in $files back-to-back uploads took $prefill_s s from the first upload to the end of the last merge ($(calc "int($n/$prefill_s)") records/s; the last merge ended $TMERGE s after the last DONE; server $(calc "round($(cpu_of "$SERVER_PID")-$c0,1)") CPU-s, PostgreSQL $(calc "round($(cluster_cpu)-$p0,1)") CPU-s, $(wal_mb_since "$w0") MB of WAL)."
if [ -n "${ONLY_PREFILL:-}" ]; then
  stop_server
  note "Cluster left running: $PG_URL (pg_ctl -D $PG_DIR stop)"
  exit 0
fi

# 4. The same CONTACT upload into the filled store.
upload "$WORK/contact.ldjson" after-prefill "$CONTACT_ROWS"
wait_merged "$PG_URL"; FILLED_MERGED=$(merged_rate "$CONTACT_ROWS")
row "$n stored | CONTACT | $CONTACT_ROWS | $T201 | $TDONE | $RATE | $TMERGE | $FILLED_MERGED | $SCPU | $PGCPU | $WALMB | $CKPTS | $(loadavg)"
if [ "$TMERGE" = "–" ]; then
  note "Filled store ($SETTINGS): $RATE records/s against $EMPTY_RATE into an empty database: $(calc "round($RATE/$EMPTY_RATE,2)") ×."
else
  note "Filled store ($SETTINGS): $RATE records/s against $EMPTY_RATE into an empty database: $(calc "round($RATE/$EMPTY_RATE,2)") × ($FILLED_MERGED against $EMPTY_MERGED counting the merge after DONE: $(calc "round($FILLED_MERGED/$EMPTY_MERGED,2)") ×)."
fi

# 5. GET entities of 100 ids on the filled store (ids of every prefill file and the upload).
for k in $(seq 0 $((files - 1))); do
  sed -n '1~50s/^{"objectId":"\([^"]*\)".*/\1/p' "$(prefill_file "$k")"
done > "$WORK/ids.txt"
lat=$(get_latency "$WORK/ids.txt")
note "GET entities of 100 ids on the $n-record store ($SETTINGS): p50 / p99 $lat ms over $GET_CALLS calls (load $(loadavg))."

# 6. Disk per stored record.
stored=$(q "$PG_URL" "SELECT count(*) FROM record_versions")
size=$(q "$PG_URL" "SELECT pg_database_size(current_database())")
note "Disk ($SETTINGS): pg_database_size $(calc "round($size/1e9,2)") GB for $stored stored versions: $(calc "int($size/$stored)") bytes per record."
note "Relations: $(q "$PG_URL" "SELECT string_agg(relname || ' ' || pg_size_pretty(pg_total_relation_size(c.oid)), ', ' ORDER BY pg_total_relation_size(c.oid) DESC) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' AND pg_total_relation_size(c.oid) > 1e6")"
stop_server

echo
echo "Machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r); $(date -u +%F); PostgreSQL $SETTINGS"
echo
printf '%s\n' "${ROWS[@]}"
echo
printf '%s\n\n' "${NOTES[@]}"
