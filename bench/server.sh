# Sourced by the benchmarks: start and stop one `intake serve` ($BIN) with every rate limit
# off, over a data dir under $WORK. start_server sets SERVER_PID, URL, KEY, SECRET and ID
# (the integration it registers); resume_server does the same over a kept data dir.
SERVER_PID=
# Starts the server over $WORK/NAME and reads its URL and initial credentials.
launch_server() { # name database-url
  local dir="$WORK/$1"
  "$BIN" serve --listen 127.0.0.1:0 --data-dir "$dir" --database "$2" \
    --rate-limit-per-second 0 --rate-limit-per-day 0 --intake-rate-limit-per-second 0 \
    > "$dir/stdout" 2> "$dir/stderr" &
  SERVER_PID=$!
  for _ in $(seq 300); do grep -q '^listening on' "$dir/stdout" 2>/dev/null && break; sleep 0.1; done
  URL=$(sed -n 's/^listening on //p' "$dir/stdout")
  KEY=$(python3 -c "import json;print(json.load(open('$dir/initial-credentials.json'))['accessKey'])")
  SECRET=$(python3 -c "import json;print(json.load(open('$dir/initial-credentials.json'))['accessKeySecret'])")
}
start_server() { # name database-url
  rm -rf "$WORK/$1"; mkdir -p "$WORK/$1"
  launch_server "$1" "$2"
  ID=$(curl -sf -u "$KEY:$SECRET" -X PUT "$URL/v2/crm/integrations" -H 'content-type: application/json' \
        -d '{"name":"bench","ownerEmail":"bench@example.com"}' | python3 -c "import json,sys;print(json.load(sys.stdin)['integrationId'])")
}
# As start_server, over a data dir (and database) kept from an earlier run: its
# credentials and integration.
resume_server() { # name database-url
  launch_server "$1" "$2"
  ID=$(curl -sf -u "$KEY:$SECRET" "$URL/v2/crm/integrations" | python3 -c "import json,sys;print(json.load(sys.stdin)['integrations'][0]['integrationId'])")
}
stop_server() { [ -z "$SERVER_PID" ] || { kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }; }
trap stop_server EXIT
