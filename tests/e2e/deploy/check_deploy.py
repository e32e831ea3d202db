#!/usr/bin/env python3
"""Static checks of deploy/: the files parse, and every image, binary, flag,
environment variable, port, metric, path and runbook link they name exists in
the project. Nothing here can run a container (no engine on the build
machines), so this is what keeps the deploy files honest as the code moves.

Usage: check_deploy.py CHECK --source-dir DIR --bin-dir DIR
Each CHECK is one CTest test; it prints every problem it finds, then exits 1
if there was any.

Where the built binaries exist (they do under `make test`), flags, variables
and defaults come from their --help; otherwise from the settings declared in
the sources, and the check says so.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

# The binaries deploy/ runs, the source folders that declare their settings,
# and the default port each one listens on.
BINARIES = {
    "meshhook-ingest": ["ingest", "common"],
    "meshhook-consumer": ["consumer", "common"],
    "meshhook": ["tools", "common"],
}
TOPICS = ["mesh.transfer-events", "mesh.transfer-events.dlq", "ledger.credit-commands",
          "ledger.credit-review", "meshhook.anomalies"]
# Labels Prometheus adds to every series, and the histogram bucket label.
IMPLICIT_LABELS = {"instance", "job", "le"}


class Problems:
    def __init__(self):
        self.items = []
        self.notes = []

    def check(self, ok, message):
        if not ok:
            self.items.append(message)
        return ok

    def note(self, message):
        self.notes.append(message)


# ---------------------------------------------------------------- the project

class Project:
    def __init__(self, source_dir, bin_dir):
        self.root = Path(source_dir)
        self.bin_dir = Path(bin_dir)
        self.deploy = self.root / "deploy"
        self._settings = {}
        self._help_source = {}

    def read(self, rel):
        return (self.root / rel).read_text(encoding="utf-8")

    def yaml(self, rel):
        return yaml.safe_load((self.root / rel).read_text(encoding="utf-8"))

    def yaml_all(self, rel):
        return [d for d in yaml.safe_load_all((self.root / rel).read_text(encoding="utf-8")) if d]

    def binary(self, name):
        p = self.bin_dir / name
        return p if p.is_file() and os.access(p, os.X_OK) else None

    def executable_targets(self):
        names = set()
        for cm in self.root.glob("*/CMakeLists.txt"):
            names.update(re.findall(r"add_executable\(\s*([A-Za-z0-9_.-]+)", cm.read_text()))
        return names

    def sources(self, folders):
        for folder in folders:
            for p in sorted((self.root / folder).glob("*.[ch]pp")):
                yield p, p.read_text(encoding="utf-8", errors="replace")

    def string_literals(self, folders):
        out = set()
        for _, text in self.sources(folders):
            out.update(re.findall(r'"((?:[^"\\\n]|\\.)*)"', text))
        return out

    def settings(self, binary, sub=None):
        """flag -> {"env": str|None, "default": str|None, "secret": bool}."""
        key = (binary, sub)
        if key in self._settings:
            return self._settings[key]
        exe = self.binary(binary)
        result = None
        if exe is not None:
            cmd = [str(exe)] + ([sub] if sub else []) + ["--help"]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
                if proc.returncode == 0 and "--help" in proc.stdout:
                    result = parse_help(proc.stdout)
                    self._help_source[key] = " ".join(cmd)
            except (OSError, subprocess.TimeoutExpired):
                result = None
        if result is None:
            result = parse_declared_settings(self.sources(BINARIES[binary]))
            self._help_source[key] = f"settings declared in {', '.join(BINARIES[binary])}/ sources"
        self._settings[key] = result
        return result

    def settings_source(self, binary, sub=None):
        self.settings(binary, sub)
        return self._help_source[(binary, sub)]

    def env_known(self, binary, name):
        """An environment variable the binary reads: in its settings, or a
        documented prefix of the sources (MESH_WEBHOOK_SECRET_<ENV>)."""
        s = self.settings(binary)
        if any(v["env"] == name for v in s.values()):
            return True
        literals = self.string_literals(BINARIES[binary])
        if name in literals:
            return True
        return any(lit.endswith("_") and re.fullmatch(r"[A-Z][A-Z0-9_]*_", lit)
                   and name.startswith(lit) and len(name) > len(lit) for lit in literals)

    def env_is_secret(self, binary, name):
        s = self.settings(binary)
        if any(v["env"] == name and v["secret"] for v in s.values()):
            return True
        return any(v["secret"] and v["env"] and v["env"].endswith("SECRET") and
                   name.startswith(v["env"] + "_") for v in s.values())

    def default_port(self, binary, flag):
        d = self.settings(binary).get(flag, {}).get("default")
        if not d:
            return None
        m = re.search(r":(\d+)$", d)
        return int(m.group(1)) if m else None

    def readme_metrics(self):
        """name -> (type, set of labels), from README.md section Metrics."""
        text = self.read("README.md")
        section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
        metrics = {}
        for line in section.splitlines():
            m = re.match(r"\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*(\w+)\s*\|([^|]*)\|", line)
            if m:
                labels = set(re.findall(r"`([a-z_]+)`", m.group(3)))
                metrics[m.group(1)] = (m.group(2), labels)
        return metrics

    def subcommands(self):
        exe = self.binary("meshhook")
        if exe is not None:
            out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=20)
            return set(re.findall(r"^  ([a-z]+)\s{2,}", out.stdout + out.stderr, re.M))
        return {"broker", "dev", "send", "sign", "verify", "tail", "replay", "state"}


def parse_help(text):
    settings = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^\s+--([a-z0-9][a-z0-9-]*)(?: VALUE)?(?:\s+\(env ([A-Z0-9_]+)\))?\s*$", line)
        if not m or m.group(1) == "help":
            continue
        detail = lines[i + 1] if i + 1 < len(lines) else ""
        d = re.search(r"\[default: (.*)\]\s*$", detail)
        default = d.group(1) if d else None
        settings[m.group(1)] = {"env": m.group(2), "default": None if default == "none" else default,
                                "secret": "[secret" in detail}
    return settings


def parse_declared_settings(sources):
    """`.add({"flag", "ENV", "default", "help", secret...})` in the sources;
    an env given as a constant (std::string(kName)) is resolved through
    `kName = "VALUE"` in the same files."""
    texts = [t for _, t in sources]
    constants = {}
    for t in texts:
        constants.update(dict(re.findall(r'\b(k[A-Za-z0-9]+)\s*=\s*"([^"]*)"', t)))
    settings = {}
    for t in texts:
        for m in re.finditer(r'\{\s*"([a-z0-9-]+)"\s*,\s*(std::string\((k\w+)\)|"([A-Z0-9_]*)")\s*,\s*'
                             r'("([^"]*)"|[^,]*)\s*,((?:[^{}]|\{[^{}]*\})*?)\}\s*\)', t):
            env = m.group(4) if m.group(4) is not None else constants.get(m.group(3))
            tail = m.group(7)
            settings[m.group(1)] = {"env": env or None, "default": m.group(6) or None,
                                    "secret": bool(re.search(r",\s*true\s*$", tail.strip()))
                                    or bool(re.match(r'.*"\s*,\s*true\b', tail, re.S))}
    return settings


def github_anchor(heading):
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def runbook_anchors(project):
    return {github_anchor(h) for h in re.findall(r"^#{1,6}\s+(.*)$", project.read("docs/RUNBOOK.md"), re.M)}


def host_port(text):
    m = re.match(r"^\[?([^\]]*)\]?:(\d+)$", text)
    return (m.group(1), int(m.group(2))) if m else (None, None)


# ---------------------------------------------------------------- PromQL

PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "offset", "bool", "rate", "irate", "increase", "delta", "idelta",
    "deriv", "changes", "resets", "histogram_quantile", "vector", "scalar", "abs", "clamp_min",
    "clamp_max", "label_replace", "time", "absent", "absent_over_time", "avg_over_time",
    "max_over_time", "min_over_time", "sum_over_time", "count_over_time", "predict_linear",
    "inf", "nan", "humanize", "round", "ceil", "floor", "sort", "sort_desc",
}


def strip_strings(expr):
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def promql_metrics(expr):
    """Metric names in an expression: identifiers that are not functions,
    keywords, label names or durations."""
    e = strip_strings(expr)
    e = re.sub(r"\{[^}]*\}", "{}", e)                       # label matchers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\[[^\]]*\]", "[]", e)                       # ranges, subqueries
    e = re.sub(r"\$\w+", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def promql_labels(expr):
    """Label names used in matchers and in by/on/... clauses."""
    e = strip_strings(expr)
    labels = set()
    for block in re.findall(r"\{([^}]*)\}", e):
        labels.update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", block))
    for block in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", e):
        labels.update(x.strip() for x in block.split(",") if x.strip())
    return labels


def base_metric(name, metrics):
    if name in metrics:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and metrics.get(name[: -len(suffix)], ("",))[0] == "histogram":
            return name[: -len(suffix)]
    return None


def check_promql(problems, where, expr, metrics):
    used = promql_metrics(expr)
    known_labels = set(IMPLICIT_LABELS)
    for name in used:
        if name == "up":
            continue
        base = base_metric(name, metrics)
        if problems.check(base is not None, f"{where}: metric {name} is not in README.md's Metrics table"):
            known_labels |= metrics[base][1]
    for label in promql_labels(expr):
        problems.check(label in known_labels,
                       f"{where}: label {label} is not a label of {sorted(used)} in README.md")
    return used


def dashboard_targets(dashboard):
    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))
    for p in walk(dashboard.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                yield p, t


# ---------------------------------------------------------------- checks

def check_alert_tests(project, problems):
    """Every alert has a runbook section, and unit tests where it fires and
    where it must not."""
    rules = project.yaml("deploy/prometheus/alerts.yml")
    tests = project.yaml("deploy/prometheus/alerts_test.yml")
    anchors = runbook_anchors(project)
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    problems.check(len(alerts) > 0, "alerts.yml has no alerts")
    problems.check(tests.get("rule_files") == ["alerts.yml"], "alerts_test.yml must load alerts.yml")
    fires, quiet = set(), set()
    for t in tests.get("tests", []):
        for case in t.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = [a["alert"] for a in alerts]
    problems.check(len(names) == len(set(names)), "duplicate alert names")
    for a in alerts:
        n = a["alert"]
        problems.check(n in fires, f"{n}: no unit test where it fires")
        problems.check(n in quiet, f"{n}: no unit test where it stays quiet")
        ann = a.get("annotations", {})
        problems.check(bool(ann.get("summary")), f"{n}: no summary annotation")
        url = ann.get("runbook_url", "")
        m = re.fullmatch(r"docs/RUNBOOK\.md#([\w-]+)", url)
        if problems.check(m is not None, f"{n}: runbook_url {url!r} does not point into docs/RUNBOOK.md"):
            problems.check(m.group(1) in anchors, f"{n}: docs/RUNBOOK.md has no section #{m.group(1)}")
        problems.check(a.get("labels", {}).get("severity") in ("page", "ticket"),
                       f"{n}: severity must be page or ticket")
    tested = fires | quiet
    for n in sorted(tested - set(names)):
        problems.check(False, f"alerts_test.yml tests an alert that does not exist: {n}")
    # The alerts the issue asks for, by what they watch.
    wanted = {
        "ack latency p99 over 150 ms": r"meshhook_ingest_request_duration_seconds_bucket.*\)\s*>\s*0\.15",
        "5xx ratio": r'status=~"5\.\."',
        "signature failure spike": r"meshhook_ingest_signature_failures_total",
        "DLQ writes": r"meshhook_ingest_dlq_writes_total",
        "consumer lag growing": r"meshhook_consumer_lag",
        "outbox oldest unsent over a minute": r"meshhook_consumer_outbox_oldest_unsent_age_seconds\)?\s*>\s*60",
        "any anomaly": r"meshhook_consumer_anomalies_total",
        "any review": r"meshhook_consumer_reviews_total",
        "readiness flap": r"changes\(meshhook_ingest_ready",
    }
    for what, pattern in wanted.items():
        problems.check(any(re.search(pattern, a["expr"], re.S) for a in alerts),
                       f"no alert for {what} (expected an expression matching {pattern})")


def check_metrics(project, problems):
    """Every metric and label the alerts and the dashboard use is in the
    README's Metrics table; every README metric is on the dashboard."""
    metrics = project.readme_metrics()
    problems.check(len(metrics) >= 20, f"README.md Metrics table: only {len(metrics)} rows parsed")
    rules = project.yaml("deploy/prometheus/alerts.yml")
    for g in rules["groups"]:
        for r in g["rules"]:
            check_promql(problems, f"alerts.yml {r.get('alert') or r.get('record')}", r["expr"], metrics)
    dashboard = json.loads(project.read("deploy/grafana/meshhook.json"))
    on_dashboard = set()
    for p, t in dashboard_targets(dashboard):
        used = check_promql(problems, f"dashboard panel {p['title']!r} {t.get('refId')}", t["expr"], metrics)
        on_dashboard |= {base_metric(u, metrics) for u in used}
    for name in sorted(set(metrics) - on_dashboard):
        problems.check(False, f"README metric {name} is on no dashboard panel")


def check_dashboard(project, problems):
    """The dashboard parses, has the panels the issue lists, uses the
    datasource variable everywhere, and its ids and layout are sane."""
    d = json.loads(project.read("deploy/grafana/meshhook.json"))
    problems.check(d.get("uid") == "meshhook", "dashboard uid must be meshhook (provisioning, links)")
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    problems.check(variables.get("datasource", {}).get("type") == "datasource"
                   and variables["datasource"].get("query") == "prometheus",
                   "dashboard needs a Prometheus datasource variable named datasource")
    ids = [p["id"] for p in d["panels"]]
    problems.check(len(ids) == len(set(ids)), "duplicate panel ids")
    titles = []
    for p in d["panels"]:
        titles.append(p["title"])
        if p["type"] == "row":
            continue
        problems.check(p.get("datasource", {}).get("uid") == "${datasource}",
                       f"panel {p['title']!r}: datasource must be ${{datasource}}")
        gp = p["gridPos"]
        problems.check(gp["x"] + gp["w"] <= 24, f"panel {p['title']!r} is wider than the grid")
        problems.check(bool(p.get("targets")), f"panel {p['title']!r} has no query")
        for t in p.get("targets", []):
            problems.check(t.get("datasource", {}).get("uid") == "${datasource}",
                           f"panel {p['title']!r} {t.get('refId')}: datasource must be ${{datasource}}")
    exprs = " ".join(t["expr"] for _, t in dashboard_targets(d))
    wanted = {
        "request rate by status": r"sum by \(status\) \(rate\(meshhook_ingest_requests_total",
        "signature failures by reason": r"by \([^)]*reason[^)]*\) \(rate\(meshhook_ingest_signature_failures_total",
        "ack latency p50": r"histogram_quantile\(0\.5, [^\n]*meshhook_ingest_request_duration_seconds_bucket",
        "ack latency p99": r"histogram_quantile\(0\.99, [^\n]*meshhook_ingest_request_duration_seconds_bucket",
        "503 rate": r"meshhook_ingest_unavailable_total",
        "in-flight requests": r"meshhook_ingest_in_flight_requests",
        "producer queue": r"meshhook_ingest_producer_queue_depth",
        "consumer lag per partition": r"by \(topic, partition\) \(meshhook_consumer_lag\)",
        "events by outcome": r"by \(outcome\) \(rate\(meshhook_consumer_event_outcomes_total",
        "credits per minute": r"meshhook_consumer_credits_total\[[^\]]*\]\)\) \* 60",
        "reviews": r"meshhook_consumer_reviews_total",
        "anomalies": r"meshhook_consumer_anomalies_total",
        "outbox backlog": r"meshhook_consumer_outbox_backlog",
        "oldest unsent age": r"meshhook_consumer_outbox_oldest_unsent_age_seconds",
    }
    for what, pattern in wanted.items():
        problems.check(re.search(pattern, exprs) is not None, f"dashboard has no query for {what}")
    latency = [p for p in d["panels"] if "latency" in p["title"].lower()]
    budget = any(s.get("value") == 0.2 for p in latency
                 for s in p["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", []))
    problems.check(budget, "the latency panel must draw the 200 ms budget (threshold at 0.2)")


def check_prometheus_config(project, problems):
    cfg = project.yaml("deploy/prometheus/prometheus.yml")
    compose = project.yaml("deploy/compose.yaml")
    services = compose["services"]
    for rf in cfg.get("rule_files", []):
        problems.check((project.deploy / "prometheus" / rf).is_file(), f"prometheus.yml: rule file {rf} missing")
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    for job, binary, flag, service in (("meshhook-ingest", "meshhook-ingest", "admin-listen", "ingest"),
                                       ("meshhook-consumer", "meshhook-consumer", "metrics-listen", "consumer")):
        if not problems.check(job in jobs, f"prometheus.yml: no job {job} (alerts.yml expects it)"):
            continue
        sd = jobs[job].get("dns_sd_configs", [{}])[0]
        problems.check(sd.get("names") == [service] and service in services,
                       f"prometheus.yml {job}: must discover compose service {service}")
        port = project.default_port(binary, flag)
        problems.check(sd.get("port") == port,
                       f"prometheus.yml {job}: port {sd.get('port')} but {binary} --{flag} defaults to port {port}")
        problems.check(jobs[job].get("metrics_path", "/metrics") == "/metrics", f"{job}: metrics path")
    alerts = project.read("deploy/prometheus/alerts.yml")
    for job in re.findall(r'job=~"([^"]*)"', alerts):
        for name in job.split("|"):
            problems.check(name in jobs, f"alerts.yml refers to job {name}, which prometheus.yml does not scrape")


def compose_env(service):
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(x.split("=", 1) for x in env)
    return {k: str(v) for k, v in env.items()}


def expand_defaults(text):
    """${VAR:-default} -> default, as compose does with VAR unset."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", text)


def command_flags(args):
    flags, i = {}, 0
    while i < len(args):
        a = str(args[i])
        if a.startswith("--"):
            if "=" in a:
                k, v = a[2:].split("=", 1)
            elif i + 1 < len(args) and not str(args[i + 1]).startswith("--"):
                k, v = a[2:], str(args[i + 1])
                i += 1
            else:
                k, v = a[2:], None
            flags[k] = v
        i += 1
    return flags


def check_compose(project, problems):
    compose = project.yaml("deploy/compose.yaml")
    services = compose["services"]
    targets = project.executable_targets()
    official = {"apache/kafka", "postgres", "prom/prometheus", "grafana/grafana"}
    for name, s in services.items():
        image = s.get("image", "")
        if problems.check(bool(image), f"compose {name}: no image"):
            repo, _, tag = image.partition(":")
            if "build" in s:
                b = s["build"]
                ctx = (project.deploy / b["context"]).resolve()
                problems.check(ctx == project.root.resolve(), f"compose {name}: build context must be the repository root")
                problems.check((ctx / b["dockerfile"]).is_file(), f"compose {name}: {b['dockerfile']} missing")
                problems.check(repo == "meshhook", f"compose {name}: built image should be named meshhook")
            else:
                problems.check(repo in official, f"compose {name}: {repo} is not one of the official images {sorted(official)}")
                problems.check(bool(tag) and tag != "latest", f"compose {name}: pin the image tag ({image})")
        for dep in (s.get("depends_on") or {}):
            problems.check(dep in services, f"compose {name}: depends_on unknown service {dep}")
        for v in s.get("volumes", []):
            src = str(v).split(":", 1)[0]
            if src.startswith("."):
                problems.check((project.deploy / src).exists(), f"compose {name}: volume source {src} does not exist")
            else:
                problems.check(src in (compose.get("volumes") or {}), f"compose {name}: named volume {src} not declared")

    # Kafka: KRaft only, node ids and voters consistent, official image.
    kafka = {n: s for n, s in services.items() if s.get("image", "").startswith("apache/kafka") and "KAFKA_NODE_ID" in compose_env(s)}
    problems.check(len(kafka) >= 1, "compose: no Kafka broker")
    listeners = set()
    for n, s in kafka.items():
        env = compose_env(s)
        problems.check("controller" in env.get("KAFKA_PROCESS_ROLES", ""), f"compose {n}: not in KRaft mode")
        problems.check(not any("ZOOKEEPER" in k for k in env), f"compose {n}: ZooKeeper settings in KRaft mode")
        voters = dict(re.findall(r"(\d+)@([\w-]+):\d+", env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "")))
        problems.check(voters.get(env["KAFKA_NODE_ID"]) == n,
                       f"compose {n}: node id {env['KAFKA_NODE_ID']} not in the quorum voters as {n}")
        problems.check(set(voters.values()) == set(kafka), f"compose {n}: quorum voters {sorted(voters.values())} != brokers {sorted(kafka)}")
        for adv in env.get("KAFKA_ADVERTISED_LISTENERS", "").split(","):
            m = re.match(r"PLAINTEXT://([\w-]+):(\d+)", adv)
            if m:
                listeners.add(f"{m.group(1)}:{m.group(2)}")
        rf = int(env.get("KAFKA_DEFAULT_REPLICATION_FACTOR", "1"))
        problems.check(rf <= len(kafka), f"compose {n}: replication factor {rf} > {len(kafka)} brokers")
        problems.check(env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE") == "false",
                       f"compose {n}: topics must come from the init service, not auto-creation")

    # Topic creation: the script exists, names the project's topics.
    init = [s for s in services.values() if any("create-topics.sh" in str(v) for v in s.get("volumes", []))]
    if problems.check(len(init) == 1, "compose: exactly one topic-creation service expected"):
        s = init[0]
        problems.check(s.get("restart") == "no", "compose topic init: must be one-shot (restart: \"no\")")
        env = compose_env(s)
        for b in env.get("KAFKA_BOOTSTRAP", "").split(","):
            problems.check(b in listeners, f"compose topic init: bootstrap {b} is no broker's listener")
        problems.check(int(env.get("REPLICATION_FACTOR", "0")) <= len(kafka), "compose topic init: RF > brokers")
        problems.check(int(env.get("MIN_INSYNC_REPLICAS", "0")) < int(env.get("REPLICATION_FACTOR", "0")),
                       "compose topic init: min.insync.replicas must be below the replication factor")
        for dep, cond in (s.get("depends_on") or {}).items():
            problems.check(dep in kafka and cond.get("condition") == "service_healthy",
                           f"compose topic init: must wait for healthy brokers ({dep})")
    script = project.read("deploy/kafka/create-topics.sh")
    rows = dict(re.findall(r'^\s*"([a-z.-]+)\s+(\d+)\s', script, re.M))
    problems.check(sorted(rows) == sorted(TOPICS), f"create-topics.sh topics {sorted(rows)} != {sorted(TOPICS)}")
    for t in TOPICS:
        used = any(t in project.string_literals([f]) for f in ("ingest", "consumer", "tools", "common"))
        problems.check(used, f"topic {t} appears in no source of the project")

    # The meshhook services.
    # (binary, the published port's flag, the probed port's flag): ingest
    # serves webhooks on --listen and its probes on --admin-listen.
    expected = {"ingest": ("meshhook-ingest", "listen", "admin-listen"),
                "consumer": ("meshhook-consumer", "metrics-listen", "metrics-listen")}
    for svc, (binary, listen_flag, probe_flag) in expected.items():
        if not problems.check(svc in services, f"compose: no service {svc}"):
            continue
        s = services[svc]
        cmd = [expand_defaults(str(c)) for c in s.get("command", [])]
        problems.check(bool(cmd) and cmd[0] == binary, f"compose {svc}: command must start with {binary}")
        problems.check(binary in targets, f"{binary} is not a CMake executable target")
        problems.check(s.get("deploy", {}).get("replicas") == 2, f"compose {svc}: 2 replicas expected")
        flags = command_flags(cmd[1:])
        settings = project.settings(binary)
        for f in flags:
            problems.check(f in settings, f"compose {svc}: {binary} has no flag --{f} ({project.settings_source(binary)})")
        env = compose_env(s)
        for k in env:
            problems.check(project.env_known(binary, k), f"compose {svc}: {binary} does not read {k}")
        for b in expand_defaults(env.get("KAFKA_BROKERS", "")).split(","):
            problems.check(b in listeners, f"compose {svc}: KAFKA_BROKERS entry {b} is no broker's listener")
        # The port it listens on, the one the healthcheck probes and the one
        # published are the binary's default.
        listen = flags.get(listen_flag) or next((expand_defaults(env[v["env"]]) for fl, v in settings.items()
                                                 if fl == listen_flag and v["env"] in env), None)
        port = host_port(listen)[1] if listen else project.default_port(binary, listen_flag)
        problems.check(port == project.default_port(binary, listen_flag),
                       f"compose {svc}: listens on {port}, {binary} --{listen_flag} defaults to {project.default_port(binary, listen_flag)}")
        probe = flags.get(probe_flag) or next((expand_defaults(env[v["env"]]) for fl, v in settings.items()
                                                if fl == probe_flag and v["env"] in env), None)
        probe_port = host_port(probe)[1] if probe else project.default_port(binary, probe_flag)
        problems.check(probe_port == project.default_port(binary, probe_flag),
                       f"compose {svc}: probes on {probe_port}, {binary} --{probe_flag} defaults to "
                       f"{project.default_port(binary, probe_flag)}")
        hc = " ".join(s.get("healthcheck", {}).get("test", []))
        problems.check(f"/dev/tcp/127.0.0.1/{probe_port}" in hc and "/readyz" in hc,
                       f"compose {svc}: healthcheck must probe /readyz on port {probe_port}")
        for p in s.get("ports", []):
            problems.check(str(p).endswith(f":{port}"), f"compose {svc}: published port {p} is not {port}")
        problems.check(s.get("read_only") is True and "ALL" in s.get("cap_drop", []),
                       f"compose {svc}: read-only, no capabilities")
        if svc == "consumer":
            store_env = settings.get("store", {}).get("env")
            store = flags.get("store") or expand_defaults(env.get(store_env or "", ""))
            problems.check("store" not in flags, "compose consumer: the store URL holds a password: "
                           "pass it in the environment, not on the command line")
            problems.check(store.startswith("postgresql://"), f"compose consumer: --store must be PostgreSQL, got {store!r}")
            host = re.search(r"@([\w-]+):(\d+)/", store)
            problems.check(host is not None and host.group(1) in services and
                           services[host.group(1)]["image"].startswith("postgres:"),
                           "compose consumer: --store must point at the postgres service")
            if host:
                pg = compose_env(services[host.group(1)])
                problems.check(f"//{pg.get('POSTGRES_USER')}:" in store and store.endswith("/" + pg.get("POSTGRES_DB", "")),
                               "compose consumer: --store user/database differ from the postgres service")
        if svc == "ingest":
            secret = expand_defaults(env.get("MESH_WEBHOOK_SECRET", ""))
            problems.check(secret.split(",")[0] == "whsec_test_fixture_secret",
                           "compose ingest: the default secret must be the fixtures' so `meshhook send` works")

    # Prometheus and Grafana mounts line up with their configs.
    prom = services.get("prometheus", {})
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in prom.get("volumes", []) if str(v).startswith(".")}
    cfg_arg = next((a.split("=", 1)[1] for a in prom.get("command", []) if a.startswith("--config.file=")), None)
    problems.check(cfg_arg in mounts and mounts[cfg_arg] == "./prometheus/prometheus.yml",
                   "compose prometheus: --config.file is not the mounted prometheus.yml")
    for rf in project.yaml("deploy/prometheus/prometheus.yml").get("rule_files", []):
        target = str(Path(cfg_arg or "/").parent / rf)
        problems.check(mounts.get(target) == f"./prometheus/{rf}", f"compose prometheus: rule file {target} is not mounted")
    graf = services.get("grafana", {})
    gm = {str(v).split(":")[1]: str(v).split(":")[0] for v in graf.get("volumes", []) if str(v).startswith(".")}
    prov = project.yaml("deploy/grafana/provisioning/dashboards/meshhook.yaml")
    dash_dir = prov["providers"][0]["options"]["path"]
    problems.check(any(t.startswith(dash_dir + "/") and s == "./grafana/meshhook.json" for t, s in gm.items()),
                   f"compose grafana: meshhook.json is not mounted under the provisioned path {dash_dir}")
    for sub in ("datasources", "dashboards"):
        problems.check(gm.get(f"/etc/grafana/provisioning/{sub}") == f"./grafana/provisioning/{sub}",
                       f"compose grafana: provisioning/{sub} not mounted")
    ds = project.yaml("deploy/grafana/provisioning/datasources/prometheus.yaml")["datasources"][0]
    problems.check(ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090" and "prometheus" in services,
                   "grafana datasource must reach the compose prometheus service")
    home = compose_env(graf).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    problems.check(home in gm, f"compose grafana: home dashboard {home} is not mounted")


def k8s_docs(project):
    docs = {}
    for p in sorted((project.deploy / "k8s").rglob("*.yaml")):
        docs[p.relative_to(project.deploy / "k8s").as_posix()] = project.yaml_all(p.relative_to(project.root))
    return docs


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_k8s(project, problems):
    docs = k8s_docs(project)
    kust = docs.pop("kustomization.yaml")[0]
    secret_doc = docs.pop("secret.example.yaml")
    optional = {k: docs.pop(k) for k in list(docs) if k.startswith("monitoring/")}
    problems.check(sorted(kust["resources"]) == sorted(docs),
                   f"kustomization resources {sorted(kust['resources'])} != manifests {sorted(docs)}")
    problems.check("secret.example.yaml" not in kust["resources"], "the example Secret must not be applied by kustomize")
    objs = [d for ds in docs.values() for d in ds]
    by_kind = {}
    for o in objs:
        problems.check(bool(o.get("apiVersion")) and bool(o.get("kind")) and bool(o.get("metadata", {}).get("name")),
                       f"k8s object without apiVersion/kind/name: {o}")
        by_kind.setdefault(o["kind"], []).append(o)
    api = {"Deployment": "apps/v1", "Service": "v1", "PodDisruptionBudget": "policy/v1",
           "HorizontalPodAutoscaler": "autoscaling/v2", "ConfigMap": "v1", "Namespace": "v1", "Secret": "v1"}
    for o in objs + secret_doc:
        problems.check(api.get(o["kind"]) == o["apiVersion"], f"k8s {o['kind']} {o['metadata']['name']}: apiVersion {o['apiVersion']}")

    secrets = [o for o in secret_doc if o["kind"] == "Secret"]
    problems.check(len(secrets) == 1, "secret.example.yaml must hold one Secret")
    secret = secrets[0] if secrets else {"metadata": {"name": ""}, "stringData": {}}
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind.get("ConfigMap", [])}
    for name, data in configmaps.items():
        for k, v in data.items():
            problems.check(not re.search(r"SECRET|PASSWORD|TOKEN|STORE|DSN|KEY", k),
                           f"ConfigMap {name}: {k} looks like a secret; it belongs in the Secret")
            problems.check(not re.search(r"://[^/@\s]+:[^/@\s]+@", str(v)), f"ConfigMap {name}: {k} holds credentials")

    dockerfile = project.read("deploy/Dockerfile")
    uid = re.search(r"^USER\s+(\d+)", dockerfile, re.M)
    kust_images = {i["name"] for i in kust.get("images", [])}
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    listen_flag = {"meshhook-ingest": "listen", "meshhook-consumer": "metrics-listen"}
    admin_flag = {"meshhook-ingest": "admin-listen", "meshhook-consumer": "metrics-listen"}
    for binary in ("meshhook-ingest", "meshhook-consumer"):
        if not problems.check(binary in deployments, f"k8s: no Deployment {binary}"):
            continue
        d = deployments[binary]
        spec, pod = d["spec"], d["spec"]["template"]["spec"]
        labels = d["spec"]["template"]["metadata"].get("labels", {})
        problems.check(matches(spec["selector"]["matchLabels"], labels), f"{binary}: selector does not match pod labels")
        sc = pod.get("securityContext", {})
        problems.check(sc.get("runAsNonRoot") is True, f"{binary}: runAsNonRoot")
        problems.check(uid is not None and sc.get("runAsUser") == int(uid.group(1)),
                       f"{binary}: runAsUser {sc.get('runAsUser')} != Dockerfile USER")
        containers = pod["containers"]
        problems.check(len(containers) == 1, f"{binary}: one container expected")
        c = containers[0]
        problems.check(c["image"] in kust_images, f"{binary}: image {c['image']} is not set by kustomization images")
        problems.check(c.get("command", [None])[0] == binary and binary in project.executable_targets(),
                       f"{binary}: command must run {binary}")
        flags = command_flags(c.get("args", []))
        settings = project.settings(binary)
        for f in flags:
            problems.check(f in settings, f"{binary}: no flag --{f} ({project.settings_source(binary)})")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        env = {e["name"]: e for e in c.get("env", [])}
        for name, e in env.items():
            problems.check(project.env_known(binary, name), f"{binary}: does not read {name} ({project.settings_source(binary)})")
            src = e.get("valueFrom", {})
            if "secretKeyRef" in src:
                ref = src["secretKeyRef"]
                problems.check(ref["name"] == secret["metadata"]["name"] and ref["key"] in secret_keys,
                               f"{binary}: {name} refers to {ref['name']}/{ref['key']}, not in secret.example.yaml")
            elif "configMapKeyRef" in src:
                ref = src["configMapKeyRef"]
                problems.check(ref["key"] in configmaps.get(ref["name"], {}),
                               f"{binary}: {name} refers to missing ConfigMap key {ref['name']}/{ref['key']}")
            if project.env_is_secret(binary, name) or re.search(r"SECRET|STORE|PASSWORD", name):
                problems.check("secretKeyRef" in src, f"{binary}: {name} is a secret and must come from a Secret")
        # The listening port: from the env/flag if set, else the default.
        lf = listen_flag[binary]
        listen = flags.get(lf)
        env_name = settings.get(lf, {}).get("env")
        if listen is None and env_name in env:
            listen = env[env_name].get("value")
        port = host_port(listen)[1] if listen else project.default_port(binary, lf)
        problems.check(port == project.default_port(binary, lf),
                       f"{binary}: listens on {port}, default of --{lf} is {project.default_port(binary, lf)}")
        # Probes and metrics: the admin port (ingest) or the one port (consumer).
        af = admin_flag[binary]
        admin = flags.get(af)
        admin_env = settings.get(af, {}).get("env")
        if admin is None and admin_env in env:
            admin = env[admin_env].get("value")
        admin_port = host_port(admin)[1] if admin else project.default_port(binary, af)
        problems.check(admin_port == project.default_port(binary, af),
                       f"{binary}: admin on {admin_port}, default of --{af} is {project.default_port(binary, af)}")
        problems.check(sorted(set(ports.values())) == sorted({port, admin_port}),
                       f"{binary}: containerPort {list(ports.values())} != {sorted({port, admin_port})}")
        ann = d["spec"]["template"]["metadata"].get("annotations", {})
        problems.check(ann.get("prometheus.io/port") == str(admin_port),
                       f"{binary}: prometheus.io/port != {admin_port}")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            p = c.get(probe, {}).get("httpGet", {})
            problems.check(p.get("path") == path, f"{binary}: {probe} must GET {path}")
            problems.check(ports.get(p.get("port"), p.get("port")) == admin_port,
                           f"{binary}: {probe} port {p.get('port')} is not the admin port {admin_port}")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                problems.check(r in res.get(kind, {}), f"{binary}: resources.{kind}.{r} missing")
        csc = c.get("securityContext", {})
        problems.check(csc.get("allowPrivilegeEscalation") is False and csc.get("readOnlyRootFilesystem") is True
                       and csc.get("capabilities", {}).get("drop") == ["ALL"], f"{binary}: container securityContext")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if binary == "meshhook-ingest":
            drain_ms = int(env.get("INGEST_DRAIN_TIMEOUT_MS", {}).get("value")
                           or settings.get("drain-timeout-ms", {}).get("default") or 0)
            pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
            pre_s = int(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else 0
            problems.check(pre_s > 0, f"{binary}: preStop sleep expected (endpoints removal before SIGTERM)")
            # in-flight wait and producer flush each get up to the drain timeout
            need = pre_s + 2 * drain_ms / 1000
            problems.check(grace > need, f"{binary}: terminationGracePeriodSeconds {grace} <= preStop + drain {need}")
            problems.check("replicas" not in spec, f"{binary}: the HPA owns replicas; do not set them")
            # The memory budget of ingest/README.md ("Memory budget") within the limit.
            def setting(flag):
                name = settings.get(flag, {}).get("env")
                return int(env.get(name, {}).get("value") or settings.get(flag, {}).get("default") or 0)
            limit = str(res.get("limits", {}).get("memory", "0"))
            limit_mib = int(limit[:-2]) * (1024 if limit.endswith("Gi") else 1) if limit[-2:] in ("Mi", "Gi") else 0
            budget_mib = (24 + 2 * setting("remember-deliveries") * 171 / 2**20
                          + setting("max-queued-kbytes") / 1024 + setting("max-queued-messages") * 0.3 / 1024
                          + setting("max-connections") * (16 + 32 + setting("max-body-bytes") / 1024) / 1024)
            problems.check(0 < budget_mib <= limit_mib,
                           f"{binary}: memory budget {budget_mib:.0f} MiB exceeds the limit {limit}"
                           " (ingest/README.md, Memory budget)")
        else:
            drain_ms = int(env.get("CONSUMER_DRAIN_TIMEOUT_MS", {}).get("value")
                           or settings.get("drain-timeout-ms", {}).get("default") or 0)
            # the relay's drain, plus a batch in hand and leaving the group
            problems.check(grace >= drain_ms / 1000 + 20,
                           f"{binary}: terminationGracePeriodSeconds {grace} < drain {drain_ms / 1000} s + 20 s")
            problems.check(spec.get("replicas", 1) >= 2, f"{binary}: at least 2 replicas")

    for s in by_kind.get("Service", []):
        target = [d for d in deployments.values() if matches(s["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])]
        if problems.check(len(target) == 1, f"Service {s['metadata']['name']}: selects {len(target)} Deployments"):
            names = {p["name"] for c in target[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
            for p in s["spec"]["ports"]:
                problems.check(p["targetPort"] in names, f"Service {s['metadata']['name']}: targetPort {p['targetPort']} unknown")
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    problems.check(any(h["spec"]["scaleTargetRef"]["name"] == "meshhook-ingest" and
                       h["spec"]["scaleTargetRef"]["kind"] == "Deployment" for h in hpas), "no HPA for meshhook-ingest")
    pdbs = by_kind.get("PodDisruptionBudget", [])
    for binary, d in deployments.items():
        lbl = d["spec"]["template"]["metadata"]["labels"]
        pdb = [p for p in pdbs if matches(p["spec"]["selector"]["matchLabels"], lbl)]
        if problems.check(len(pdb) == 1, f"{binary}: one PodDisruptionBudget expected, found {len(pdb)}"):
            floor = min([h["spec"]["minReplicas"] for h in hpas if h["spec"]["scaleTargetRef"]["name"] == binary]
                        or [d["spec"].get("replicas", 1)])
            if "minAvailable" in pdb[0]["spec"]:
                problems.check(pdb[0]["spec"]["minAvailable"] < floor,
                               f"{binary}: PDB minAvailable {pdb[0]['spec']['minAvailable']} blocks every eviction at {floor} replicas")
    for o in [x for ds in optional.values() for x in ds]:
        if o["kind"] == "PodMonitor":
            d = [d for d in deployments.values() if matches(o["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"])]
            if problems.check(len(d) == 1, f"PodMonitor {o['metadata']['name']} selects no Deployment"):
                ports = {p["name"] for c in d[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
                for e in o["spec"]["podMetricsEndpoints"]:
                    problems.check(e["port"] in ports, f"PodMonitor {o['metadata']['name']}: port {e['port']} unknown")
                problems.check(d[0]["spec"]["template"]["metadata"]["labels"].get(o["spec"]["jobLabel"]) == d[0]["metadata"]["name"],
                               f"PodMonitor {o['metadata']['name']}: job label would not be {d[0]['metadata']['name']}")
    if shutil.which("kubectl"):
        proc = subprocess.run(["kubectl", "kustomize", str(project.deploy / "k8s")], capture_output=True, text=True)
        problems.check(proc.returncode == 0, f"kubectl kustomize deploy/k8s failed: {proc.stderr.strip()}")
    else:
        problems.note("kubectl not installed: kustomize build not exercised")


def check_dockerfile(project, problems):
    text = project.read("deploy/Dockerfile")
    lines = re.sub(r"\\\n", " ", text).splitlines()
    froms = [l.split() for l in lines if l.startswith("FROM ")]
    problems.check(len(froms) >= 2, "Dockerfile must be multi-stage")
    problems.check(all(f[1].startswith("debian:12") for f in froms), f"Dockerfile: every stage on debian:12 ({froms})")
    problems.check(re.search(r"cmake --preset release\b", text) is not None, "Dockerfile must build with cmake --preset release")
    for l in lines:
        if l.startswith("COPY ") and "--from=" not in l:
            for src in l.split()[1:-1]:
                problems.check((project.root / src).exists(), f"Dockerfile: COPY source {src} does not exist")
    # The ignore file must let every COPY source through (and only those).
    ignore = project.deploy / "Dockerfile.dockerignore"
    if problems.check(ignore.is_file(), "deploy/Dockerfile.dockerignore missing (the context is the whole repository)"):
        allowed = {l[1:].rstrip("/") for l in ignore.read_text().splitlines() if l.startswith("!")}
        copied = {src.rstrip("/") for l in lines if l.startswith("COPY ") and "--from=" not in l
                  for src in l.split()[1:-1]}
        problems.check(allowed == copied, f"Dockerfile.dockerignore lets through {sorted(allowed)}, COPY uses {sorted(copied)}")
    targets = project.executable_targets()
    built = set(re.findall(r"build/release/bin/([\w.-]+)", text))
    problems.check(built == set(BINARIES), f"Dockerfile installs {sorted(built)}, expected {sorted(BINARIES)}")
    for b in BINARIES:
        problems.check(b in targets, f"{b} is not a CMake executable target")
    user = re.search(r"^USER\s+(\d+)(?::(\d+))?\s*$", text, re.M)
    problems.check(user is not None and int(user.group(1)) != 0, "Dockerfile: final USER must be a numeric non-root uid")
    last_stage = text.split("\nFROM ")[-1]
    problems.check("USER " in last_stage, "Dockerfile: USER must be set in the final stage")
    exposed = {int(p) for p in re.findall(r"^EXPOSE\s+(.*)$", text, re.M)[0].split()} if "EXPOSE" in text else set()
    wanted = {project.default_port("meshhook-ingest", "listen"), project.default_port("meshhook-ingest", "admin-listen"),
              project.default_port("meshhook-consumer", "metrics-listen")}
    problems.check(exposed == wanted, f"Dockerfile EXPOSE {sorted(exposed)} != default ports {sorted(wanted, key=str)}")
    # The runtime stage installs one package per shared library the binaries
    # link; checked against ldd of the binaries built here, mapped to Debian
    # packages with dpkg -S.
    install = re.findall(r"apt-get install[^&]*", last_stage)
    runtime = set(re.findall(r"\b(lib[a-z0-9.+-]+)\b", " ".join(install)))
    base = {"libc6", "libstdc++6", "libgcc-s1", "libzstd1", "zlib1g", "liblz4-1", "libsystemd0"}
    exes = [project.binary(b) for b in BINARIES]
    if not all(exes) or not shutil.which("ldd") or not shutil.which("dpkg"):
        problems.note("binaries not built (or no ldd/dpkg): runtime library coverage not checked")
        return
    needed = {}
    libs = {}
    for exe in exes:
        out = subprocess.run(["ldd", str(exe)], capture_output=True, text=True).stdout
        for path in re.findall(r"=>\s+(/\S+)", out):
            libs.setdefault(path, set()).add(exe.name)
    # One dpkg -S for every path (it is slow per call); with merged /usr a
    # library is registered under /lib or /usr/lib, so ask for both spellings.
    spellings = {p: {p, os.path.realpath(p)} | {q.replace("/usr/lib/", "/lib/", 1) for q in (p, os.path.realpath(p))}
                 for p in libs}
    query = sorted(set().union(*spellings.values())) if spellings else []
    owners = {}
    if query:
        out = subprocess.run(["dpkg", "-S"] + query, capture_output=True, text=True).stdout
        for line in out.splitlines():
            pkgs, _, path = line.partition(": ")
            owners[path.strip()] = pkgs.split(",")[0].split(":")[0].strip()
    for path, users in sorted(libs.items()):
        pkg = next((owners[q] for q in sorted(spellings[path]) if q in owners), None)
        problems.check(pkg is not None, f"{sorted(users)}: no Debian package owns {path}")
        if pkg:
            needed.setdefault(pkg, set()).update(users)
    # Transitive dependencies of listed packages come with apt; only direct
    # packages must be listed. A library is covered if its package is listed
    # or is pulled in by one that is.
    covered = set(runtime) | base
    todo = list(runtime)
    while todo:
        pkg = todo.pop()
        q = subprocess.run(["dpkg-query", "-W", "-f=${Pre-Depends}, ${Depends}", pkg],
                           capture_output=True, text=True)
        for alt in q.stdout.split(","):
            for dep in alt.split("|"):
                name = re.sub(r":\w+$", "", dep.strip().split(" ")[0]) if dep.strip() else ""
                if name and name not in covered:
                    covered.add(name)
                    todo.append(name)
    print("runtime libraries of the binaries, by Debian package: " +
          ", ".join(f"{p} ({', '.join(sorted(u))})" for p, u in sorted(needed.items())))
    for pkg, users in sorted(needed.items()):
        problems.check(pkg in covered, f"Dockerfile runtime stage lacks {pkg} (linked by {sorted(users)})")
    for pkg in sorted(runtime - set(needed)):
        problems.check(pkg in ("libssl3",) or any(pkg.startswith(p) for p in ("libfmt",)) or pkg in needed,
                       f"Dockerfile runtime stage installs {pkg}, which no binary links")


def check_docs(project, problems):
    """deploy/README.md and docs/RUNBOOK.md only use subcommands and flags
    that exist, and the relative links and paths they name exist."""
    subs = project.subcommands()
    for rel in ("deploy/README.md", "docs/RUNBOOK.md"):
        text = project.read(rel)
        code = "\n".join(re.findall(r"`([^`\n]+)`", text) + re.findall(r"```[a-z]*\n(.*?)```", text, re.S))
        code = re.sub(r"\\\n\s*", " ", code)
        # `meshhook SUB ...` at the start of a command, or through the compose
        # service `cli` whose entrypoint is meshhook; not `kubectl -n meshhook get`.
        pattern = r"(?:^|[;&|(]\s*|\$\s+|--\s+|/)meshhook ([a-z][a-z-]*)([^\n|;&`]*)|run --rm cli ([a-z][a-z-]*)([^\n|;&`]*)"
        for m in re.finditer(pattern, code, re.M):
            sub, rest = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            if not problems.check(sub in subs, f"{rel}: `meshhook {sub}` is no subcommand ({sorted(subs)})"):
                continue
            settings = project.settings("meshhook", sub)
            if not settings:
                continue
            for f in re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", rest):
                problems.check(f in settings or f == "help",
                               f"{rel}: `meshhook {sub} --{f}`: no such flag ({project.settings_source('meshhook', sub)})")
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            problems.check((project.root / Path(rel).parent / target).exists(), f"{rel}: link target {target} missing")
        for path in re.findall(r"`((?:deploy|docs|tests)/[\w./-]+)`", text):
            problems.check((project.root / path).exists(), f"{rel}: path {path} does not exist")
        for a in re.findall(r"\]\(#([\w-]+)\)", text):
            if rel.endswith("RUNBOOK.md"):
                problems.check(a in runbook_anchors(project), f"{rel}: anchor #{a} missing")


def check_topics_script(project, problems):
    """deploy/kafka/create-topics.sh builds the right kafka-topics.sh and
    kafka-configs.sh calls: run against recorders of those two commands (no
    Kafka broker can run here), once on an empty cluster and once on a cluster
    where every topic exists."""
    import tempfile
    script = project.deploy / "kafka" / "create-topics.sh"
    problems.check(os.access(script, os.X_OK), "create-topics.sh is not executable")
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    problems.check(syntax.returncode == 0, f"create-topics.sh: {syntax.stderr.strip()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        log = tmp / "calls"
        # kafka-topics.sh --describe succeeds only when EXISTING is set, and
        # then reports 6 partitions, so the mismatch warning shows.
        (tmp / "kafka-topics.sh").write_text(
            "#!/bin/bash\necho \"kafka-topics.sh $*\" >> \"$CALLS\"\n"
            "if [[ \" $* \" == *\" --describe \"* ]]; then\n"
            "  [[ -n \"$EXISTING\" ]] || exit 1\n"
            "  echo \"Topic: x  TopicId: y  PartitionCount: 6  ReplicationFactor: 3\"\nfi\n")
        (tmp / "kafka-configs.sh").write_text("#!/bin/bash\necho \"kafka-configs.sh $*\" >> \"$CALLS\"\n")
        for f in ("kafka-topics.sh", "kafka-configs.sh"):
            (tmp / f).chmod(0o755)
        env = dict(os.environ, KAFKA_BOOTSTRAP="k1:9092,k2:9092", REPLICATION_FACTOR="3",
                   MIN_INSYNC_REPLICAS="2", KAFKA_BIN=str(tmp), CALLS=str(log))
        run = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=30)
        problems.check(run.returncode == 0, f"create-topics.sh on an empty cluster exited {run.returncode}: {run.stderr}")
        calls = log.read_text().splitlines() if log.exists() else []
        creates = [c for c in calls if " --create " in c]
        rows = dict(re.findall(r'^\s*"([a-z.-]+)\s+(\d+)\s', script.read_text(), re.M))
        problems.check(len(creates) == len(TOPICS), f"expected {len(TOPICS)} --create calls, got {len(creates)}")
        for topic in TOPICS:
            c = next((c for c in creates if f" --topic {topic} " in c + " "), None)
            if not problems.check(c is not None, f"create-topics.sh does not create {topic}"):
                continue
            for want in (f"--partitions {rows.get(topic)}", "--replication-factor 3",
                         "--bootstrap-server k1:9092,k2:9092", "--config min.insync.replicas=2",
                         "--config unclean.leader.election.enable=false", "--config retention.ms=",
                         "--if-not-exists"):
                problems.check(want in c, f"create {topic}: missing {want!r} in: {c}")
        log.unlink(missing_ok=True)
        env["EXISTING"] = "1"
        run = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=30)
        problems.check(run.returncode == 0, f"create-topics.sh on an existing cluster exited {run.returncode}: {run.stderr}")
        calls = log.read_text().splitlines() if log.exists() else []
        problems.check(not any(" --create " in c for c in calls), "create-topics.sh re-creates existing topics")
        alters = [c for c in calls if c.startswith("kafka-configs.sh") and " --alter " in c]
        problems.check(len(alters) == len(TOPICS), f"expected {len(TOPICS)} config updates, got {len(alters)}")
        problems.check(all("min.insync.replicas=2" in c for c in alters), "config updates must set min.insync.replicas")
        warned = [t for t in TOPICS if f"{t} has 6 partitions" in run.stderr]
        problems.check(sorted(warned) == sorted(t for t in TOPICS if rows.get(t) != "6"),
                       f"partition-count warnings for {warned}")


def check_docker_context(project, problems):
    """The image's build stage configures from exactly what it COPYs: the
    COPY sources are put in a temporary directory the way the build context
    would hold them, the Dockerfile's own `cmake --preset` command runs there,
    and every target its `cmake --build` names exists. (Compiling is left to
    the real image build: on these machines it would take minutes.)"""
    import shlex
    import tempfile
    text = project.read("deploy/Dockerfile")
    joined = re.sub(r"\\\n", " ", text)
    build_stage = joined.split("\nFROM ")[1] if "\nFROM " in joined else joined
    copies = [l.split()[1:] for l in build_stage.splitlines() if l.startswith("COPY ") and "--from=" not in l]
    configure = re.search(r"(cmake --preset \S+[^&]*?)\s*&&", build_stage)
    build = re.search(r"cmake --build --preset (\S+)[^&]*?--target ((?:[\w.-]+\s*)+)", build_stage)
    if not problems.check(configure is not None and build is not None,
                          "Dockerfile: no `cmake --preset ...` / `cmake --build --preset ... --target ...`"):
        return
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp)
        for args in copies:
            *sources, dest = args
            # Every COPY of the build stage mirrors its source path under
            # WORKDIR /src (checked here, so the mirror is faithful).
            for src in sources:
                problems.check(dest.rstrip("/") in (src.rstrip("/"), ".") or dest == "./",
                               f"Dockerfile: COPY {src} {dest} does not keep the repository layout")
                origin = project.root / src
                if not problems.check(origin.exists(), f"COPY source {src} missing"):
                    continue
                if origin.is_dir():
                    shutil.copytree(origin, ctx / src.rstrip("/"), dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("build", ".git"))
                else:
                    shutil.copy2(origin, ctx / Path(src).name)
        cmd = shlex.split(configure.group(1))
        proc = subprocess.run(cmd, cwd=ctx, capture_output=True, text=True, timeout=120)
        if not problems.check(proc.returncode == 0,
                              f"`{' '.join(cmd)}` fails on the image's build context:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"):
            return
        preset = build.group(1)
        targets = build.group(2).split()
        helptext = subprocess.run(["cmake", "--build", "--preset", preset, "--target", "help"], cwd=ctx,
                                  capture_output=True, text=True, timeout=60).stdout
        for t in targets:
            problems.check(re.search(rf"\.\.\. {re.escape(t)}$", helptext, re.M) is not None,
                           f"Dockerfile builds --target {t}, which the configured tree does not have")
        print(f"configured the image's build context with: {' '.join(cmd)}; targets {targets} exist")


CHECKS = {
    "alert-tests": check_alert_tests,
    "metrics": check_metrics,
    "dashboard": check_dashboard,
    "prometheus-config": check_prometheus_config,
    "compose": check_compose,
    "topics-script": check_topics_script,
    "k8s": check_k8s,
    "dockerfile": check_dockerfile,
    "docker-context": check_docker_context,
    "docs": check_docs,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("check", choices=sorted(CHECKS))
    ap.add_argument("--source-dir", default=str(Path(__file__).resolve().parents[3]))
    ap.add_argument("--bin-dir", default=None)
    args = ap.parse_args()
    bin_dir = args.bin_dir or str(Path(args.source_dir) / "build" / "dev" / "bin")
    project = Project(args.source_dir, bin_dir)
    problems = Problems()
    CHECKS[args.check](project, problems)
    for n in problems.notes:
        print(f"note: {n}")
    for (binary, sub), src in sorted(project._help_source.items(), key=str):
        print(f"settings of {binary}{' ' + sub if sub else ''}: {src}")
    if problems.items:
        for p in problems.items:
            print(f"FAIL: {p}")
        print(f"{len(problems.items)} problem(s) in check {args.check}")
        return 1
    print(f"check {args.check}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
