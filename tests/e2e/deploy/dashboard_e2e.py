#!/usr/bin/env python3
"""End to end: the Grafana dashboard and the alert rules against the real
services.

Starts `meshhook broker` (Kafka protocol over TCP), `meshhook mesh` (the
Mesh API simulator the consumer reconciles against), `meshhook-ingest`,
`meshhook-consumer` on SQLite and a real Prometheus server (Debian's
`prometheus`) scraping both every second with deploy/prometheus/alerts.yml
loaded, all on free ports in a temporary directory. Posts signed and
unsigned deliveries the way Mesh does, then asks Prometheus's HTTP API:

- both targets are up and every alert rule loaded and evaluates cleanly;
- every query of deploy/grafana/meshhook.json returns at least one series
  with a finite value ($__rate_interval replaced by a window that fits the
  1 s scrape interval);
- the alerts that must fire on this traffic (DLQ write, anomaly, review)
  fire, and the ones that must not (target down, 5xx ratio) do not;
- the compose file's healthchecks (bash, /dev/tcp, GET /readyz) pass
  against the running services and fail against a closed port.

Usage: dashboard_e2e.py --source-dir DIR --bin-dir DIR [--prometheus PATH]
"""

import argparse
import base64
import ctypes
import hashlib
import hmac
import http.client
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import yaml

SECRET = "whsec_test_fixture_secret"
SIGNATURE_HEADER = "X-Mesh-Signature-256"
RATE_INTERVAL = "30s"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    # The children must not outlive this test if it is killed (ctest timeout).
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def wait_until(what, condition, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except (OSError, http.client.HTTPException, ValueError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def fresh(body):
    """The body with SentTimestamp set to now (same unit), as Mesh stamps every
    delivery: ingest refuses one outside its replay window (24 h by default)."""
    def now(m):
        seconds = int(m.group(2)) < 100_000_000_000
        return m.group(1) + str(int(time.time()) if seconds else int(time.time() * 1000)).encode()
    return re.sub(rb'("[Ss]entTimestamp"\s*:\s*)(-?\d+)', now, body, count=1)


def sign(body):
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


class Children:
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def start(self, name, argv, env=None, stdin=None):
        log = open(self.tmp / f"{name}.log", "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE if stdin else log, stderr=log,
                             env=full_env, cwd=self.tmp, preexec_fn=die_with_parent)
        self.procs.append((name, p, log))
        return p

    def check_alive(self):
        for name, p, _ in self.procs:
            if p.poll() is not None:
                raise AssertionError(f"{name} exited with {p.returncode}:\n{self.log(name)}")

    def log(self, name):
        try:
            return (self.tmp / f"{name}.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        for name, p, log in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            log.close()


def http_get(port, path, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def post(port, path, body, headers):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class Prometheus:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path, **params):
        url = f"{self.base}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.load(r)
        if doc.get("status") != "success":
            raise AssertionError(f"{path}: {doc}")
        return doc["data"]

    def query(self, expr):
        return self.api("query", query=expr)


def finite_values(data):
    out = []
    if data["resultType"] == "vector":
        for s in data["result"]:
            v = float(s["value"][1])
            if math.isfinite(v):
                out.append((s["metric"], v))
    elif data["resultType"] == "scalar":
        v = float(data["result"][1])
        if math.isfinite(v):
            out.append(({}, v))
    return out


def dashboard_queries(path):
    d = json.loads(Path(path).read_text())
    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))
    for p in walk(d["panels"]):
        for t in p.get("targets", []):
            if t.get("expr"):
                yield p["title"], t.get("refId", "?"), t["expr"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--prometheus", default="prometheus")
    args = ap.parse_args()
    src, bins = Path(args.source_dir).resolve(), Path(args.bin_dir).resolve()
    fixtures = src / "tests" / "fixtures"
    for b in ("meshhook", "meshhook-ingest", "meshhook-consumer"):
        if not (bins / b).is_file():
            print(f"FAIL: {bins / b} not built")
            return 1

    tmp = Path(tempfile.mkdtemp(prefix="meshhook-dashboard-e2e-"))
    children = Children(tmp)
    try:
        run(src, bins, fixtures, tmp, children, args.prometheus)
    except Exception as e:  # noqa: BLE001 - any failure: report it with the children's logs
        print(f"FAIL: {type(e).__name__}: {e}")
        for name, _, _ in children.procs:
            print(f"--- {name} log (tail) ---\n{children.log(name)}")
        return 1
    finally:
        children.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok")
    return 0


def run(src, bins, fixtures, tmp, children, prometheus_bin):
    # -------------------------------------------------------------- services
    broker = children.start("broker", [str(bins / "meshhook"), "broker"], stdin=subprocess.PIPE)
    ready, _, _ = select.select([broker.stdout], [], [], 30)
    assert ready, "meshhook broker printed no bootstrap line"
    first = broker.stdout.readline().decode().strip()
    assert first.startswith("bootstrap="), f"unexpected first broker line {first!r}"
    bootstrap = first.split("=", 1)[1]

    # The Mesh API simulator, so that the consumer reconciles (its metrics
    # are on the dashboard): one failed transfer the webhooks never told about
    # (failed: the credit counts this test checks stay its own).
    mesh = children.start("mesh", [str(bins / "meshhook"), "mesh", "--client-id", "dash-id",
                                   "--client-secret", "dash-secret"], stdin=subprocess.PIPE)
    ready, _, _ = select.select([mesh.stdout], [], [], 30)
    assert ready, "meshhook mesh printed no listen line"
    first = mesh.stdout.readline().decode().strip()
    assert first.startswith("listen="), f"unexpected first mesh line {first!r}"
    mesh_url = "http://" + first.split("=", 1)[1]
    mesh.stdin.write(f"transfer {uuid.uuid4()} failed 12.5 symbol=USDC networkName=Ethereum\n"
                     .encode())
    mesh.stdin.flush()

    ingest_port, consumer_port, prom_port = free_port(), free_port(), free_port()
    ingest_admin_port = free_port()  # /healthz, /readyz, /metrics of ingest
    children.start("ingest", [str(bins / "meshhook-ingest")], env={
        "KAFKA_BROKERS": bootstrap,
        "INGEST_LISTEN": f"127.0.0.1:{ingest_port}",
        "INGEST_ADMIN_LISTEN": f"127.0.0.1:{ingest_admin_port}",
        "MESH_WEBHOOK_SECRET": SECRET,
        "MESH_WEBHOOK_SECRET_SANDBOX": SECRET,
        "INGEST_THREADS": "2",
        # The test broker answers in a few ms, but a loaded CI machine may not.
        "INGEST_ACK_TIMEOUT_MS": "2000",
    })
    children.start("consumer", [str(bins / "meshhook-consumer"),
                                "--store", f"sqlite://{tmp / 'state.db'}",
                                "--group-id", f"dashboard-e2e-{uuid.uuid4().hex[:8]}",
                                "--metrics-listen", f"127.0.0.1:{consumer_port}"],
                   # Mesh API credentials for sandbox only: the fixtures'
                   # production transfer 03 has a DestinationAddress whose
                   # letter case is not its EIP-55 checksum, so the network
                   # check (production credentials) would hold it for review
                   # and the credit counts below are the dashboard's, not the
                   # check's (tests/integration/consumer/networks_test.cpp).
                   # The reconciliation and network-list panels are per
                   # environment and get sandbox's series.
                   env={"KAFKA_BROKERS": bootstrap,
                        "MESH_CLIENT_ID_SANDBOX": "dash-id", "MESH_CLIENT_SECRET_SANDBOX": "dash-secret",
                        "MESH_API_URL_SANDBOX": mesh_url, "CONSUMER_RECONCILE_INTERVAL_S": "1",
                        "CONSUMER_RECONCILE_STALE_AFTER_S": "0"})

    def ready(port):
        children.check_alive()
        return http_get(port, "/readyz")[0] == 200
    wait_until("meshhook-ingest /readyz", lambda: ready(ingest_admin_port), 30)
    wait_until("meshhook-consumer /readyz", lambda: ready(consumer_port), 60)
    # The paths the Kubernetes probes and Prometheus use (deploy/k8s).
    for port in (ingest_admin_port, consumer_port):
        for path in ("/healthz", "/metrics"):
            status = http_get(port, path)[0]
            assert status == 200, f"GET {path} on port {port} answered {status}"

    # The compose healthchecks (bash and /dev/tcp: the image has no curl)
    # work against the real servers, and fail against a closed port.
    compose = yaml.safe_load((src / "deploy" / "compose.yaml").read_text())
    for service, port in (("ingest", ingest_admin_port), ("consumer", consumer_port)):
        test = compose["services"][service]["healthcheck"]["test"]
        assert test[0] == "CMD", f"{service} healthcheck: {test}"
        default = re.search(r"/dev/tcp/127\.0\.0\.1/(\d+)", test[-1]).group(1)
        for p, want in ((port, 0), (free_port(), 1)):
            argv = test[1:-1] + [test[-1].replace(f"/127.0.0.1/{default}", f"/127.0.0.1/{p}")]
            rc = subprocess.run(argv, capture_output=True, timeout=10).returncode
            assert (rc == 0) == (want == 0), f"compose healthcheck of {service} on port {p}: exit {rc}"

    rules = src / "deploy" / "prometheus" / "alerts.yml"
    config = tmp / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": "meshhook-ingest", "static_configs": [{"targets": [f"127.0.0.1:{ingest_admin_port}"]}]},
            {"job_name": "meshhook-consumer", "static_configs": [{"targets": [f"127.0.0.1:{consumer_port}"]}]},
        ],
    }))  # JSON is YAML
    children.start("prometheus", [prometheus_bin, f"--config.file={config}",
                                  f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                                  f"--web.listen-address=127.0.0.1:{prom_port}",
                                  "--log.level=warn"])
    prom = Prometheus(prom_port)
    wait_until("Prometheus ready", lambda: children.check_alive() or http_get(prom_port, "/-/ready")[0] == 200, 60)

    def targets_up():
        active = prom.api("targets")["activeTargets"]
        return len(active) == 2 and all(t["health"] == "up" for t in active)
    wait_until("both targets up", targets_up, 30)

    # -------------------------------------------------------------- traffic
    def deliver(body, path="/webhooks/mesh", headers=None, expect=200):
        h = {SIGNATURE_HEADER: sign(body)} if headers is None else headers
        status, answer = post(ingest_port, path, body, h)
        assert status == expect, f"POST {path} answered {status} ({answer[:200]!r}), expected {expect}"

    bodies = {p.name: fresh(p.read_bytes()) for p in sorted(fixtures.glob("*.json"))}
    for name in ("01-pending.json", "02-processing.json", "03-succeeded.json",
                 "04-succeeded-retry.json", "05-failed-other-transfer.json", "06-camelcase-succeeded.json"):
        deliver(bodies[name])
    deliver(bodies["01-pending.json"], path="/webhooks/mesh/sandbox")
    # Signature failures, one per reason.
    deliver(bodies["01-pending.json"], headers={}, expect=401)
    deliver(bodies["01-pending.json"], headers={SIGNATURE_HEADER: "%%% not base64 %%%"}, expect=401)
    deliver(bodies["01-pending.json"], headers={SIGNATURE_HEADER: sign(b"another body")}, expect=401)
    # Signed but unusable: dead-lettered.
    deliver(bodies["90-malformed-truncated.json"], expect=400)
    deliver(bodies["91-missing-transfer-id.json"], expect=400)

    # Succeeded after failed for the transfer of fixture 05: an anomaly.
    failed = json.loads(bodies["05-failed-other-transfer.json"])
    anomaly = dict(failed, Id=str(uuid.uuid4()), EventId=str(uuid.uuid4()), TransferStatus="Succeeded", DestinationAmount=40,
                   TxHash="0x" + "ab" * 32, SentTimestamp=failed.get("SentTimestamp", 0) + 60,
                   Timestamp=failed.get("Timestamp", 0) + 60000)
    deliver(json.dumps(anomaly).encode())
    # A succeeded transfer without a destination amount: held for review.
    succeeded = json.loads(bodies["03-succeeded.json"])
    review = dict(succeeded, Id=str(uuid.uuid4()), EventId=str(uuid.uuid4()), TransferId=str(uuid.uuid4()),
                  DestinationAmount=None)
    deliver(json.dumps(review).encode())
    # The README's test delivery: `meshhook send --scenario demo`.
    send = subprocess.run([str(bins / "meshhook"), "send", "--url", f"http://127.0.0.1:{ingest_port}/webhooks/mesh",
                           "--secret", SECRET, "--scenario", "demo"],
                          capture_output=True, text=True, timeout=60)
    assert send.returncode == 0, f"meshhook send --scenario demo exited {send.returncode}: {send.stdout}{send.stderr}"
    # Probes and an unknown route, as load balancers and scanners do.
    assert http_get(ingest_admin_port, "/healthz")[0] == 200
    assert http_get(ingest_port, "/healthz")[0] == 404  # probes live on the admin listener only
    assert http_get(ingest_port, "/no-such-route")[0] == 404

    # The consumer has applied everything: credits for 03 and 06.
    def consumed():
        children.check_alive()
        v = finite_values(prom.query("sum(meshhook_consumer_credits_total)"))
        return v and v[0][1] >= 2
    wait_until("two credits counted by the consumer", consumed, 60)

    # -------------------------------------------------------------- checks
    groups = prom.api("rules")["groups"]
    loaded = [r for g in groups for r in g["rules"]]
    assert loaded, "Prometheus loaded no rules from deploy/prometheus/alerts.yml"
    bad = [f"{r['name']}: {r.get('lastError')}" for r in loaded if r.get("health") == "err"]
    assert not bad, f"rules failing to evaluate: {bad}"

    queries = list(dashboard_queries(src / "deploy" / "grafana" / "meshhook.json"))
    assert queries, "the dashboard has no queries"
    pending = {(t, r): e.replace("$__rate_interval", RATE_INTERVAL) for t, r, e in queries}
    results = {}

    def all_have_data():
        children.check_alive()
        for key in list(pending):
            values = finite_values(prom.query(pending[key]))
            if values:
                results[key] = values
                del pending[key]
        return not pending
    try:
        wait_until("every dashboard query to return data", all_have_data, 60, interval=1)
    except AssertionError:
        missing = "\n  ".join(f"{t} [{r}]: {e}" for (t, r), e in pending.items())
        raise AssertionError(f"{len(pending)} of {len(queries)} dashboard queries return no finite data:\n  {missing}")
    for (title, ref), values in sorted(results.items()):
        print(f"data: {title} [{ref}]: {len(values)} series, e.g. {values[0][1]:g}")

    # The counters behind the panels moved the way the traffic says.
    def value(expr):
        v = finite_values(prom.query(expr))
        return sum(x for _, x in v)
    expect = {
        'sum(meshhook_ingest_requests_total{route="webhook",status="401"})': 3,
        'sum(meshhook_ingest_requests_total{route="webhook",status="400"})': 2,
        'sum(meshhook_ingest_signature_failures_total)': 3,
        'sum(meshhook_ingest_dlq_writes_total)': 2,
        'sum(meshhook_ingest_published_total{environment="sandbox"})': 1,
        'sum(meshhook_consumer_anomalies_total)': 1,
        'sum(meshhook_consumer_reviews_total)': 1,
        # exactly once: 03 (and Mesh's retry 04, and the demo's copies) and 06
        'sum(meshhook_consumer_credits_total)': 2,
    }
    # 9 posted here, and the demo's deliveries (the same transfers: no new credit)
    expect_at_least = {'sum(meshhook_ingest_requests_total{route="webhook",status="200"})': 10}
    for expr, want in expect_at_least.items():
        wait_until(f"{expr} >= {want}", lambda e=expr, w=want: value(e) >= w, 30, interval=1)
    for expr, want in expect.items():
        got = wait_until(f"{expr} == {want}", lambda e=expr, w=want: value(e) == w and w, 30, interval=1)
        assert got, expr

    # Alerts on this traffic.
    def firing():
        return {a["labels"]["alertname"] for a in prom.api("alerts")["alerts"] if a["state"] == "firing"}
    must_fire = {"MeshhookDLQWrites", "MeshhookAnomaly", "MeshhookReview"}
    wait_until(f"alerts {sorted(must_fire)} firing", lambda: must_fire <= firing(), 30, interval=1)
    quiet = {"MeshhookTargetDown", "MeshhookWebhook5xxRatioHigh", "MeshhookNotReady", "MeshhookOutboxStuck"}
    assert not (quiet & firing()), f"alerts firing that must not: {sorted(quiet & firing())}"
    print(f"firing as expected: {sorted(firing())}")


if __name__ == "__main__":
    sys.exit(main())
