#!/usr/bin/env bash
# The associations on a store of CONTACTS contacts, ACCOUNTS accounts, DEALS deals and USERS
# users, on SQLite and on PostgreSQL: one association of 4 parties (p50/p99 over one
# keep-alive connection), the batch endpoint (activities/s), and the ingest of the bench's
# 200 MB CONTACT file with the look-up keys maintained, beside the same upload by
# BASELINE_BIN (an `intake` built before the look-ups) when given. Prints a Markdown
# table. See BENCHMARKS.md.
#
# ONLY=calls skips the ingest comparison (ONLY=ingest the calls); BACKENDS="sqlite" runs one
# backend; KEEP_WORLD=1 keeps each backend's world (under $WORK/w-<backend>, PostgreSQL
# database intake_assoc_world) and reuses it on the next run, so that a build can be
# timed on the same store in a minute. The batch runs BATCH_RUNS times (each rate shown);
# its answers must be byte-identical on both backends and to $WORK/batch.ref (written by
# the first run; remove it when the data or the contract changes).
set -euo pipefail
cd "$(dirname "$0")/.."

CONTACTS=${CONTACTS:-1000000}
ACCOUNTS=${ACCOUNTS:-200000}
DEALS=${DEALS:-500000}
USERS=${USERS:-10000}
CONTACT_ROWS=${CONTACT_ROWS:-740000}
SINGLE=${SINGLE:-3000}
BATCH=${BATCH:-20000}
BASELINE_BIN=${BASELINE_BIN:-}
ONLY=${ONLY:-all}
BACKENDS=${BACKENDS:-sqlite postgres}
KEEP_WORLD=${KEEP_WORLD:-}
BATCH_RUNS=${BATCH_RUNS:-3}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/intake-assoc.XXXXXX)}
mkdir -p "$WORK"
command -v psql >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq postgresql-client >/dev/null; }

[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p intake-cli
BIN=$PWD/target/release/intake
NEW_BIN=$BIN
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }

echo "generating data in $WORK" >&2
gen() { [ -s "$WORK/$1-raw.ldjson" ] || "$BIN" gen --type "$2" --count "$3" --seed "$4" --output "$WORK/$1-raw.ldjson"; }
gen accounts ACCOUNT "$ACCOUNTS" 21
gen users BUSINESS_USER "$USERS" 22
gen contacts CONTACT "$CONTACTS" 23
gen deals DEAL "$DEALS" 24
[ -s "$WORK/contact.ldjson" ] || "$BIN" gen --type CONTACT --count "$CONTACT_ROWS" --seed 1 --output "$WORK/contact.ldjson"
# A world that hangs together: each account its own domain, contacts at their account's
# domain with addresses of their own, deals of the accounts owned by the users; and the
# activities: two contacts, one user and one stranger at an account's domain.
[ -s "$WORK/activities.ldjson" ] || python3 - "$WORK" "$SINGLE" "$BATCH" <<'PY'
import json, random, sys
work, single, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(5)
def rewrite(name, fix):
    out = open(f"{work}/{name}.ldjson", "w")
    kept = []
    for i, line in enumerate(open(f"{work}/{name}-raw.ldjson")):
        d = json.loads(line); fix(i, d); kept.append(d)
        out.write(json.dumps(d, separators=(",", ":")) + "\n")
    return kept
accounts = rewrite("accounts", lambda i, d: d.update(domains=[f"acct{i}.example.com"]))
users = rewrite("users", lambda i, d: d.update(emailAddress=f"user{i}@ourco.example"))
def contact(i, d):
    a = i % len(accounts)
    d.update(accountId=accounts[a]["objectId"], emailAddress=f"person{i}@acct{a}.example.com")
contacts = rewrite("contacts", contact)
def deal(i, d):
    d.update(accountId=accounts[i % len(accounts)]["objectId"], ownerId=users[i % len(users)]["objectId"],
             status="OPEN", closeDate="2024-05-20")
    d.pop("createdDate", None)
rewrite("deals", deal)
def activity():
    a, b = rnd.randrange(len(contacts)), rnd.randrange(len(contacts))
    return {"startTime": "2024-05-01T10:00:00Z", "timing": "Now", "parties": [
        {"emailAddress": contacts[a]["emailAddress"]}, {"emailAddress": contacts[b]["emailAddress"]},
        {"emailAddress": users[rnd.randrange(len(users))]["emailAddress"]},
        {"emailAddress": f"someone@acct{rnd.randrange(len(accounts))}.example.com"}]}
with open(f"{work}/activities.ldjson", "w") as out:
    for _ in range(single): out.write(json.dumps(activity()) + "\n")
with open(f"{work}/batch.ldjson", "w") as out:
    for _ in range(batch): out.write(json.dumps(activity()) + "\n")
PY

source bench/server.sh
peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$SERVER_PID/status"; }

upload() { # file type crid rows -> RATE
  local t1 t2 status
  curl -sf -u "$KEY:$SECRET" -F "dataFile=@$1" \
    "$URL/v2/crm/entities?integrationId=$ID&objectType=$2&clientRequestId=$3" > /dev/null
  t1=$(now)
  while :; do
    status=$(curl -sf -u "$KEY:$SECRET" "$URL/v2/crm/request-status?integrationId=$ID&clientRequestId=$3" \
      | python3 -c "import json,sys;print(json.load(sys.stdin)['status'])")
    [ "$status" = DONE ] || [ "$status" = FAILED ] && break
    sleep 0.05
  done
  t2=$(now); RATE=$(calc "int($4/($t2-$t1))")
}

fresh_pg() { # name -> PG_URL
  psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" > /dev/null
  PG_URL=${PG_ADMIN%/*}/$1
}

ROWS=()
row() { ROWS+=("| $* |"); echo "| $* |" >&2; }
row "backend | ingest CONTACT records/s, look-ups kept | same, before the look-ups | ratio | association of 4 parties p50 / p99 (ms) | batch activities/s | peak RSS (MB)"
row "--- | --- | --- | --- | --- | --- | ---"
for backend in $BACKENDS; do
  # The ingest of the 200 MB CONTACT file on an empty store, with and without the look-ups.
  declare -A INGEST=([new]=–)
  [ "$ONLY" = calls ] || for which in new baseline; do
    [ "$which" = baseline ] && { [ -n "$BASELINE_BIN" ] || continue; BIN=$BASELINE_BIN; }
    if [ $backend = sqlite ]; then start_server "i-$which" "sqlite://$WORK/i-$which/intake.db"
    else fresh_pg "intake_assoc_i_$which"; start_server "i-$which" "$PG_URL"; fi
    upload "$WORK/contact.ldjson" CONTACT "ingest" "$CONTACT_ROWS"
    INGEST[$which]=$RATE; stop_server; BIN=$NEW_BIN
    [ $backend = postgres ] && psql -q "$PG_ADMIN" -c "DROP DATABASE intake_assoc_i_$which WITH (FORCE)" > /dev/null
  done
  [ "$ONLY" = ingest ] && { row "$backend | ${INGEST[new]} | ${INGEST[baseline]:-–} | – | – | – | –"; continue; }
  # The world, then the calls.
  world=w-$backend
  [ $backend = sqlite ] && WORLD_URL="sqlite://$WORK/$world/intake.db" || WORLD_URL=${PG_ADMIN%/*}/intake_assoc_world
  if [ -n "$KEEP_WORLD" ] && [ -e "$WORK/$world/ready" ]; then
    resume_server "$world" "$WORLD_URL"
  else
    [ $backend = postgres ] && fresh_pg intake_assoc_world
    start_server "$world" "$WORLD_URL"
    upload "$WORK/accounts.ldjson" ACCOUNT accounts "$ACCOUNTS"
    upload "$WORK/users.ldjson" BUSINESS_USER users "$USERS"
    # In files under the 200 MB limit.
    [ -s "$WORK/contacts-part-aa" ] || split -n l/2 "$WORK/contacts.ldjson" "$WORK/contacts-part-"
    for part in "$WORK"/contacts-part-*; do
      upload "$part" CONTACT "contacts-${part##*-}" $(( CONTACTS / 2 ))
    done
    upload "$WORK/deals.ldjson" DEAL deals "$DEALS"
    sleep 5 # let the key tiers settle
    # PostgreSQL's statistics, as autovacuum gathers them soon after a load (without them,
    # the first minutes after the load plan the reads worse: 314 /s against ~1,300 later).
    [ $backend = postgres ] && psql -q "$WORLD_URL" -c "VACUUM ANALYZE" > /dev/null
    touch "$WORK/$world/ready"
  fi
  # A store at rest: on PostgreSQL, the merge of the recent tiers done (a merge running
  # beside the calls took their p99 from ~4 to ~18 ms on a slow machine).
  if [ $backend = postgres ]; then
    for _ in $(seq 600); do
      [ "$(psql -tA "$WORLD_URL" -c "SELECT (SELECT count(*) FROM recent_versions_0) + (SELECT count(*) FROM recent_versions_1)")" = 0 ] && break
      sleep 1
    done
  fi
  latency=$(python3 - "$URL" "$KEY" "$SECRET" "$WORK/activities.ldjson" <<'PY'
import base64, http.client, json, sys, time, statistics
url, key, secret, path = sys.argv[1:]
host, port = url.split("//")[1].split(":")
auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
conn = http.client.HTTPConnection(host, int(port))
times, matched = [], 0
for i, line in enumerate(open(path)):
    t0 = time.perf_counter()
    conn.request("POST", "/intake/v1/associations", body=line,
                 headers={"Authorization": auth, "Content-Type": "application/json"})
    r = conn.getresponse(); body = r.read()
    if i >= 100: times.append((time.perf_counter() - t0) * 1000)
    assert r.status == 200, body
    matched += b'"Opportunity"' in body
times.sort()
print(f"{statistics.median(times):.2f} / {times[int(len(times) * 0.99)]:.2f} ({matched} of {i + 1} matched deals)")
PY
)
  rates=()
  for _ in $(seq "$BATCH_RUNS"); do
    t0=$(now)
    curl -sf -u "$KEY:$SECRET" -H 'content-type: application/x-ndjson' --data-binary "@$WORK/batch.ldjson" \
      "$URL/intake/v1/associations/batch" -o "$WORK/batch.out"
    rates+=("$(calc "int($BATCH/($(now)-$t0))")")
    [ "$(wc -l < "$WORK/batch.out")" = "$BATCH" ] || { echo "batch answered $(wc -l < "$WORK/batch.out") lines" >&2; exit 1; }
    [ -s "$WORK/batch.ref" ] || cp "$WORK/batch.out" "$WORK/batch.ref"
    cmp -s "$WORK/batch.out" "$WORK/batch.ref" || { echo "$backend: the batch's answers differ from $WORK/batch.ref" >&2; exit 1; }
  done
  batch_rate=$(IFS=/; echo "${rates[*]}")
  rss=$(peak_rss_mb); stop_server
  [ $backend = postgres ] && [ -z "$KEEP_WORLD" ] && psql -q "$PG_ADMIN" -c "DROP DATABASE intake_assoc_world WITH (FORCE)" > /dev/null
  base=${INGEST[baseline]:-–}
  ratio=$({ [ "$base" = – ] || [ "${INGEST[new]}" = – ]; } && echo – || calc "round(${INGEST[new]}/$base,2)")
  row "$backend | ${INGEST[new]} | $base | $ratio | $latency | $batch_rate | $rss"
done

echo
echo "Machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -r); $(date -u +%F); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%s\n' "${ROWS[@]}"
