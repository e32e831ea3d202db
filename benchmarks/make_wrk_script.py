#!/usr/bin/env python3
"""Writes a wrk Lua script that posts N distinct signed Mesh deliveries in turn.

Each body is fixture 03 sent now (SentTimestamp) with its own TransferId/EventId/Id, signed with the
secret the way Mesh does (base64 HMAC-SHA256 over the exact bytes). wrk's
LuaJIT has no HMAC, so the signing happens here, ahead of the run.

SEED (default 0) is the upper half of every Id's UUID, as bench_load's
--id-seed: a script with another seed posts Ids that ingest has never
acknowledged, so none is answered from its memory of recent Ids as a replay.

usage: make_wrk_script.py FIXTURE SECRET N PATH OUT.lua [SEED]
"""
import base64
import hashlib
import hmac
import json
import re
import sys
import time
import uuid


def lua_string(s: str) -> str:
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


def main() -> None:
    fixture, secret, n, path, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    seed = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    template = open(fixture, 'rb').read().decode()
    # Sent now (same unit), as Mesh stamps each delivery: ingest's replay window
    # (24 h by default) refuses the fixture's 2025 SentTimestamp.
    template = re.sub(r'("[Ss]entTimestamp"\s*:\s*)(\d+)',
                      lambda m: m.group(1) + str(int(time.time()) if int(m.group(2)) < 100_000_000_000
                                                 else int(time.time() * 1000)),
                      template, count=1)
    original = json.loads(template, parse_float=str)
    bodies = []
    for i in range(n):
        body = template
        for field in ('TransferId', 'EventId', 'Id'):
            body = body.replace(original[field], str(uuid.UUID(int=(seed << 64) | (i << 8) | len(field))))
        sig = base64.b64encode(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()).decode()
        bodies.append((body, sig))
    with open(out, 'w') as f:
        f.write('local bodies = {\n')
        for body, sig in bodies:
            f.write('  {%s, %s},\n' % (lua_string(body), lua_string(sig)))
        f.write('}\n')
        f.write('local i = 0\n')
        f.write('request = function()\n')
        f.write('  i = i %% %d + 1\n' % n)
        f.write('  local b = bodies[i]\n')
        f.write('  return wrk.format("POST", %s, {["Content-Type"] = "application/json", '
                '["X-Mesh-Signature-256"] = b[2]}, b[1])\n' % lua_string(path))
        f.write('end\n')
        # Machine-readable summary for run.sh.
        f.write('done = function(summary, latency, requests)\n')
        f.write('  io.write(string.format("RESULT requests=%d duration_us=%d errors=%d non2xx=%d '
                'p50_us=%d p99_us=%d p999_us=%d max_us=%d\\n", summary.requests, summary.duration, '
                'summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, '
                'summary.errors.status, latency:percentile(50), latency:percentile(99), '
                'latency:percentile(99.9), latency.max))\n')
        f.write('end\n')


if __name__ == '__main__':
    main()
