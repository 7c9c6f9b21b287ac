#!/usr/bin/env bash
# The reading side on a store of DEALS deals, ACCOUNTS accounts, USERS users and 20 stages,
# on SQLite and on PostgreSQL: a page of records, one record's versions and, when the
# server has it, the deal board (OPEN, and as of an earlier time). Each figure is the median
# (and the slowest) of RUNS timed calls with curl over keep-alive-less HTTP. Prints a
# Markdown table. With BASELINE_BIN (an `intake` built before the board projection, e.g.
# from ba5e8e8), the same DEAL upload is also timed with it, in the same run, so that the
# ingest cost of the projection shows. BACKENDS="sqlite" (or "postgres") runs one. See
# BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

DEALS=${DEALS:-500000}
ACCOUNTS=${ACCOUNTS:-100000}
USERS=${USERS:-5000}
RUNS=${RUNS:-7}
BASELINE_BIN=${BASELINE_BIN:-}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
PG_DB=${PG_DB:-intake_bench_reading}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/intake-reading.XXXXXX)}
mkdir -p "$WORK"
command -v psql >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq postgresql-client >/dev/null; }

[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p intake-cli
BIN=$PWD/target/release/intake
NEW_BIN=$BIN
calc() { python3 -c "print($1)"; }

echo "generating data in $WORK" >&2
[ -s "$WORK/accounts.ldjson" ] || "$BIN" gen --type ACCOUNT --count "$ACCOUNTS" --seed 11 --output "$WORK/accounts.ldjson"
[ -s "$WORK/users.ldjson" ] || "$BIN" gen --type BUSINESS_USER --count "$USERS" --seed 12 --output "$WORK/users.ldjson"
[ -s "$WORK/deals.ldjson" ] || {
  "$BIN" gen --type DEAL --count "$DEALS" --seed 13 --output "$WORK/deals-raw.ldjson"
  # Deals that point at the generated accounts and users; one in 50 without an owner, so
  # that the board has hidden deals to explain.
  python3 - "$WORK" <<'EOF'
import json, sys
work = sys.argv[1]
ids = lambda f: [json.loads(l)["objectId"] for l in open(f"{work}/{f}")]
accounts, users = ids("accounts.ldjson"), ids("users.ldjson")
with open(f"{work}/deals-raw.ldjson") as src, open(f"{work}/deals.ldjson", "w") as out:
    for i, line in enumerate(src):
        d = json.loads(line)
        d["accountId"] = accounts[i % len(accounts)]
        d["ownerId"] = users[i % len(users)]
        if i % 50 == 0:
            del d["ownerId"]
        out.write(json.dumps(d, separators=(",", ":")) + "\n")
EOF
}
# A second version of every fifth deal, modified after every first one and with a new
# amount: a board as of a time between the two versions reads the earlier versions of
# those deals back (a fifth of the deals; under the quarter of the rows that makes it a
# whole read).
[ -s "$WORK/deals-v2.ldjson" ] || python3 - "$WORK" <<'EOF'
import json, sys
work = sys.argv[1]
with open(f"{work}/deals.ldjson") as src, open(f"{work}/deals-v2.ldjson", "w") as out:
    for i, line in enumerate(src):
        if i % 5 == 0:
            d = json.loads(line)
            d["modifiedDate"] = "2026-06-01T00:00:00Z"
            d["amount"] = (d.get("amount") or 0) + 1
            out.write(json.dumps(d, separators=(",", ":")) + "\n")
EOF
[ -s "$WORK/stages.ldjson" ] || python3 - "$WORK" <<'EOF'
import json, sys
names = ["prospecting", "discovery", "qualification", "proposal", "negotiation", "won", "lost"]
names += [f"extra-{k}" for k in range(20 - len(names))]
with open(f"{sys.argv[1]}/stages.ldjson", "w") as out:
    for k, n in enumerate(names):
        out.write(json.dumps({"objectId": n, "name": n.title(), "sortOrder": k + 1,
                              "modifiedDate": "2019-01-01T00:00:00Z"}) + "\n")
EOF

source bench/server.sh

upload_done() { # file type crid
  curl -sf -u "$KEY:$SECRET" -F "dataFile=@$1" \
    "$URL/v2/crm/entities?integrationId=$ID&objectType=$2&clientRequestId=$3" > /dev/null
  while :; do
    status=$(curl -sf -u "$KEY:$SECRET" "$URL/v2/crm/request-status?integrationId=$ID&clientRequestId=$3" \
      | python3 -c "import json,sys;print(json.load(sys.stdin)['status'])")
    [ "$status" = DONE ] || [ "$status" = FAILED ] && break
    sleep 0.2
  done
}

# timed PATH -> "median ms (max ms)" of RUNS calls, after one warm-up call; "–" when the
# server does not serve PATH.
timed() {
  local code; code=$(curl -s -o /dev/null -w '%{http_code}' -u "$KEY:$SECRET" "$URL$1")
  [ "$code" = 200 ] || { echo "– (HTTP $code)"; return; }
  local times=()
  for _ in $(seq "$RUNS"); do
    times+=("$(curl -s -o /dev/null -w '%{time_total}' -u "$KEY:$SECRET" "$URL$1")")
  done
  python3 -c "import statistics,sys; t=[float(x)*1000 for x in sys.argv[1:]]; print(f'{statistics.median(t):.1f} ({max(t):.1f})')" "${times[@]}"
}

# once PATH -> ms of one call (the first after the upload: the board's cache is cold).
once() {
  python3 -c "import sys; print(f'{float(sys.argv[1])*1000:.1f}')" \
    "$(curl -s -o /dev/null -w '%{time_total}' -u "$KEY:$SECRET" "$URL$1")"
}

ROWS=()
row() { ROWS+=("| $* |"); echo "| $* |" >&2; }
row "backend | ingest DEAL records/s | same, BASELINE_BIN | records page of 100 (ms) | page 100 in the middle (ms) | versions of a deal (ms) | deal board OPEN, first call, cold (ms) | deal board OPEN (ms) | deal board OPEN asOf, first call (ms) | deal board OPEN asOf (ms) | OPEN, first call after a second upload, board in use (ms) | asOf with DEALS/5 versions read back, first calls (ms) | server RSS then (MB) | first call after a restart (ms)"
row "--- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | ---"
# ingest_rate BACKEND NAME -> DEAL records/s of $BIN into a fresh store (data dir
# $WORK/NAME; on PostgreSQL a fresh database) holding the stages, users and accounts;
# leaves that server running (the rate is written to $WORK/NAME.rate, as the function
# runs in this shell so that stop_server can reach the server).
ingest_rate() {
  local url
  if [ "$1" = sqlite ]; then
    url="sqlite://$WORK/$2/intake.db"
  else
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" -c "CREATE DATABASE $PG_DB" > /dev/null
    url="${PG_ADMIN%/*}/$PG_DB"
  fi
  start_server "$2" "$url"
  upload_done "$WORK/stages.ldjson" STAGE stages
  upload_done "$WORK/users.ldjson" BUSINESS_USER users
  upload_done "$WORK/accounts.ldjson" ACCOUNT accounts
  local t0; t0=$(date +%s.%N)
  upload_done "$WORK/deals.ldjson" DEAL deals
  calc "int($DEALS/($(date +%s.%N)-$t0))" > "$WORK/$2.rate"
}
for backend in ${BACKENDS:-sqlite postgres}; do
  before="–"
  if [ -n "$BASELINE_BIN" ]; then
    BIN=$BASELINE_BIN
    ingest_rate $backend "r-$backend-before"
    before=$(cat "$WORK/r-$backend-before.rate")
    stop_server
    BIN=$NEW_BIN
  fi
  ingest_rate $backend "r-$backend"
  rate=$(cat "$WORK/r-$backend.rate")
  # Let an idle SQLite server merge its key tiers, as it would between uploads (and the
  # server warm its board).
  sleep ${SETTLE:-10}
  middle=$(sed -n "$((DEALS / 2))p" "$WORK/deals.ldjson" | python3 -c "import json,sys;print(json.load(sys.stdin)['objectId'])")
  cursor=$(python3 -c "
import base64, json, sys
c = {'i': int(sys.argv[1]), 't': 'DEAL', 'o': None, 'd': False, 'a': sys.argv[2]}
print(base64.urlsafe_b64encode(json.dumps(c, separators=(',', ':')).encode()).decode().rstrip('='))" "$ID" "$middle")
  page=$(timed "/intake/v1/records/DEAL?limit=100")
  page_middle=$(timed "/intake/v1/records/DEAL?limit=100&cursor=$cursor")
  versions=$(timed "/intake/v1/records/DEAL/$middle/versions")
  board_first=$(once "/intake/v1/deal-board?status=OPEN")
  board=$(timed "/intake/v1/deal-board?status=OPEN")
  board_as_of_first=$(once "/intake/v1/deal-board?status=OPEN&asOf=2023-01-01T00:00:00Z")
  board_as_of=$(timed "/intake/v1/deal-board?status=OPEN&asOf=2023-01-01T00:00:00Z")
  # As of a time between the two versions of a fifth of the deals: those versions read
  # back by key. Each first call at a new time (the last one asked is kept).
  upload_done "$WORK/deals-v2.ldjson" DEAL deals-v2
  sleep ${SETTLE:-10}
  # The board was asked for before that upload: the server kept it warm across it.
  board_in_use=$(once "/intake/v1/deal-board?status=OPEN")
  versioned=()
  for month in 01 02 03 04 05; do
    versioned+=("$(once "/intake/v1/deal-board?status=OPEN&asOf=2026-$month-01T00:00:00Z")")
  done
  versioned_as_of=$(python3 -c "import statistics,sys; t=[float(x) for x in sys.argv[1:]]; print(f'{statistics.median(t):.1f} ({max(t):.1f})')" "${versioned[@]}")
  # What the server holds then: the board's cache of every version, and the last boards.
  rss=$(awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$SERVER_PID/status")
  # What a client sees on its first call after a restart (the board is read whole: a
  # server keeps warm only the boards asked for since it started).
  url=$([ $backend = sqlite ] && echo "sqlite://$WORK/r-$backend/intake.db" || echo "${PG_ADMIN%/*}/$PG_DB")
  stop_server
  resume_server "r-$backend" "$url"
  sleep 3
  restart_first=$(once "/intake/v1/deal-board?status=OPEN")
  row "$backend | $rate | $before | $page | $page_middle | $versions | $board_first | $board | $board_as_of_first | $board_as_of | $board_in_use | $versioned_as_of | $rss | $restart_first"
  stop_server
done
psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" > /dev/null

echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r); $(date -u +%F)"
echo "Store: $DEALS deals, $ACCOUNTS accounts, $USERS users, 20 stages; median (slowest) of $RUNS calls."
echo
printf '%s\n' "${ROWS[@]}"
