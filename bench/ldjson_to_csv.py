#!/usr/bin/env python3
"""Turns an LDJSON upload into CSV rows shaped like Intake's `record_versions` table
(integration_id, object_type, object_id, modified, seq, line, deleted, body), for the
raw-load baseline (`sqlite3 .import`, PostgreSQL `COPY`)."""
import csv
import datetime
import json
import sys

object_type = sys.argv[1] if len(sys.argv) > 1 else "1"
out = csv.writer(sys.stdout, lineterminator="\n")
for number, raw in enumerate(sys.stdin.buffer, start=1):
    raw = raw.strip()
    if not raw:
        continue
    try:
        obj = json.loads(raw)
        stamp = obj["modifiedDate"].replace("Z", "+00:00")
        modified = int(datetime.datetime.fromisoformat(stamp).timestamp())
        out.writerow([1, object_type, obj["objectId"], modified, 1, number, 0, raw.decode()])
    except Exception:
        continue
