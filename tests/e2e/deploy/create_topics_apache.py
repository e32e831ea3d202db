#!/usr/bin/env python3
"""End to end: deploy/kafka/create-topics.sh against a real Apache Kafka.

Starts `meshhook broker --engine apache --brokers 3 --no-default-topics`
(Apache Kafka 4.x in KRaft mode, three JVMs on loopback, from the jars of
`make kafka`). Apache Kafka's bin/ scripts are not among those jars, so
kafka-topics.sh and kafka-configs.sh are written into a temporary directory
as wrappers that run TopicCommand / ConfigCommand from the same jars. Then:

- the expected topics come from the script's own TOPICS table (evaluated by
  bash, so its $((N * DAY_MS)) arithmetic is the script's), cross-checked
  against the pipeline's five topic names and deploy/README.md's Topics table
  (partitions, retention in days): a value changed in one place only fails;
- create-topics.sh on the empty cluster (REPLICATION_FACTOR=3,
  MIN_INSYNC_REPLICAS=2) exits 0, and every topic has its partition count,
  every partition three distinct replicas, and the topic-level (dynamic topic)
  configs cleanup.policy=delete, retention.ms from the table,
  min.insync.replicas=2, unclean.leader.election.enable=false;
- one topic's min.insync.replicas is lowered to 1 with kafka-configs.sh
  --alter; a second run prints `updated <name>` for every topic, warns about
  no partition count, exits 0, and every topic is as above again.

Usage: create_topics_apache.py --source-dir DIR --bin-dir DIR --kafka-libs DIR
"""

import argparse
import ctypes
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The pipeline's topics (as in check_deploy.py); the script must name exactly these.
PIPELINE_TOPICS = ["mesh.transfer-events", "mesh.transfer-events.dlq", "ledger.credit-commands",
                   "ledger.credit-review", "meshhook.anomalies"]
BROKERS = 3
REPLICATION_FACTOR = 3
MIN_ISR = 2
DAY_MS = 86_400_000
BOOTSTRAP_DEADLINE_S = 240
TOOL_TIMEOUT_S = 90
SCRIPT_TIMEOUT_S = 240
# The topic whose min.insync.replicas is lowered before the second run.
VICTIM = "ledger.credit-review"

LOG4J2 = """\
status = error
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = ERR
"""


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def die_with_parent():
    # The broker (and, through it, its JVMs) must not outlive this test if it
    # is killed (ctest timeout).
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def java_binary():
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return os.path.join(home, "bin", "java")
    java = shutil.which("java")
    check(java is not None, "no java on PATH or in JAVA_HOME (apt-get install openjdk-17-jre-headless)")
    return java


# --- expected values --------------------------------------------------------

def script_topics(script):
    """{name: (partitions, retention_ms)} in the script's order, from its
    TOPICS array, evaluated by bash with the script's DAY_MS."""
    text = script.read_text()
    day = re.search(r"^DAY_MS=.*$", text, re.M)
    table = re.search(r"^TOPICS=\(\n.*?^\)$", text, re.M | re.S)
    check(day is not None and table is not None,
          f"{script}: no `DAY_MS=` line or `TOPICS=( ... )` array to read the expected topics from")
    code = f"set -eu\n{day.group(0)}\n{table.group(0)}\nprintf '%s\\n' \"${{TOPICS[@]}}\"\n"
    run = subprocess.run(["bash", "-c", code], capture_output=True, text=True, timeout=10)
    check(run.returncode == 0, f"evaluating the script's TOPICS table failed: {run.stderr.strip()}")
    topics = {}
    for row in run.stdout.splitlines():
        fields = row.split()
        check(len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit(),
              f"TOPICS row is not `name partitions retention.ms`: {row!r}")
        check(fields[0] not in topics, f"TOPICS names {fields[0]} twice")
        topics[fields[0]] = (int(fields[1]), int(fields[2]))
    return topics


def readme_topics(readme):
    """{name: (partitions, retention_ms)} from deploy/README.md's Topics table."""
    rows = re.findall(r"^\|\s*`([a-z.-]+)`\s*\|\s*(\d+)\s*\|\s*(\d+)\s*days?\s*\|", readme.read_text(), re.M)
    return {name: (int(p), int(d) * DAY_MS) for name, p, d in rows}


def expected_topics(source):
    script = source / "deploy" / "kafka" / "create-topics.sh"
    topics = script_topics(script)
    check(sorted(topics) == sorted(PIPELINE_TOPICS),
          f"create-topics.sh's TOPICS names {sorted(topics)}, the pipeline uses {sorted(PIPELINE_TOPICS)}")
    documented = readme_topics(source / "deploy" / "README.md")
    for name, (partitions, retention) in topics.items():
        check(name in documented, f"deploy/README.md's Topics table has no row for {name}")
        check(documented[name] == (partitions, retention),
              f"{name}: create-topics.sh sets {partitions} partitions, retention.ms={retention}; "
              f"deploy/README.md says {documented[name][0]} partitions, "
              f"{documented[name][1] // DAY_MS} days (retention.ms={documented[name][1]})")
        check(partitions >= 1 and retention >= DAY_MS,
              f"{name}: implausible partitions={partitions} retention.ms={retention}")
    return topics


def expected_configs(retention):
    return {"cleanup.policy": "delete", "retention.ms": str(retention),
            "min.insync.replicas": str(MIN_ISR), "unclean.leader.election.enable": "false"}


# --- tools ------------------------------------------------------------------

def write_wrappers(tmp, libs):
    (tmp / "log4j2.properties").write_text(LOG4J2)
    # Each JVM dies with whatever started it (this test, or the script's
    # bash, which dies with this test), so a killed test leaves none behind.
    setpriv = shutil.which("setpriv")
    guard = [setpriv, "--pdeathsig", "KILL"] if setpriv else []
    java = guard + [java_binary(), "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={tmp / 'log4j2.properties'}",
            "-cp", f"{libs}/*"]  # quoted: java expands the wildcard, not the shell
    bindir = tmp / "kafka-bin"
    bindir.mkdir()
    for script, main_class in (("kafka-topics.sh", "org.apache.kafka.tools.TopicCommand"),
                               ("kafka-configs.sh", "kafka.admin.ConfigCommand")):
        path = bindir / script
        path.write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in java + [main_class]) +
                        ' "$@"\n')
        path.chmod(0o755)
    return bindir


def start(argv, env=None):
    # Own process group, so a timeout can kill a wrapper script's JVM too.
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=die_with_parent)


def finish(proc, what, timeout):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise Failure(f"{what} did not finish in {timeout}s; stderr: {err.strip()[-2000:]}")
    return proc.returncode, out, err


def tool(bindir, bootstrap, script, *args):
    proc = start([str(bindir / script), "--bootstrap-server", bootstrap, *args])
    return proc, f"{script} {' '.join(args)}"


def tool_ok(pending):
    proc, what = pending
    rc, out, err = finish(proc, what, TOOL_TIMEOUT_S)
    check(rc == 0, f"{what} exited {rc}: {err.strip()[-2000:]}")
    return out


# --- cluster state ----------------------------------------------------------

def parse_topics_describe(text):
    """kafka-topics.sh --describe -> {name: {"count", "rf", "configs", "partitions": {id: [replicas]}}}"""
    topics = {}
    for line in text.splitlines():
        fields = dict(re.findall(r"(\w+): ([^\t]*)", line.strip()))
        if "Topic" not in fields:
            continue
        if "PartitionCount" in fields:
            configs = fields.get("Configs", "").strip()
            topics[fields["Topic"]] = {
                "count": int(fields["PartitionCount"]), "rf": int(fields["ReplicationFactor"]),
                "configs": dict(kv.split("=", 1) for kv in configs.split(",") if kv),
                "partitions": {}}
        elif "Partition" in fields:
            check(fields["Topic"] in topics, f"partition line before its topic: {line!r}")
            replicas = [r for r in fields.get("Replicas", "").strip().split(",") if r]
            topics[fields["Topic"]]["partitions"][int(fields["Partition"])] = replicas
    return topics


def parse_configs_describe(text):
    """kafka-configs.sh --describe --entity-type topics -> {name: {key: (value, source)}}"""
    topics, current = {}, None
    for line in text.splitlines():
        head = re.match(r"Dynamic configs for topic (\S+) are:", line)
        if head:
            current = topics.setdefault(head.group(1), {})
            continue
        entry = re.match(r"\s+([\w.]+)=(\S*) sensitive=\w+ synonyms=\{(\w+):", line)
        if entry and current is not None:
            current[entry.group(1)] = (entry.group(2), entry.group(3))
    return topics


def cluster_state(bindir, bootstrap, topics):
    # The two describes in parallel: each is a JVM start.
    described = tool(bindir, bootstrap, "kafka-topics.sh", "--describe")
    configured = tool(bindir, bootstrap, "kafka-configs.sh", "--describe", "--entity-type", "topics")
    return parse_topics_describe(tool_ok(described)), parse_configs_describe(tool_ok(configured))


def state_problems(state, topics, override=None):
    """Every difference between the cluster and the expected topics.
    override: {topic: {key: value}} expected instead."""
    described, configured = state
    problems = []
    for name, (partitions, retention) in topics.items():
        want = dict(expected_configs(retention), **(override or {}).get(name, {}))
        d = described.get(name)
        if d is None:
            problems.append(f"{name}: does not exist")
            continue
        if d["count"] != partitions:
            problems.append(f"{name}: {d['count']} partitions, expected {partitions}")
        if sorted(d["partitions"]) != list(range(partitions)):
            problems.append(f"{name}: partitions {sorted(d['partitions'])} described, expected 0..{partitions - 1}")
        if d["rf"] != REPLICATION_FACTOR:
            problems.append(f"{name}: replication factor {d['rf']}, expected {REPLICATION_FACTOR}")
        for p, replicas in sorted(d["partitions"].items()):
            if len(set(replicas)) != REPLICATION_FACTOR:
                problems.append(f"{name}-{p}: replicas {replicas}, expected {REPLICATION_FACTOR} distinct brokers")
        c = configured.get(name, {})
        for key, value in want.items():
            # Set on the topic itself: the brokers' defaults (the test
            # cluster's min.insync.replicas is 2 too) do not count.
            have = c.get(key)
            if have != (value, "DYNAMIC_TOPIC_CONFIG"):
                problems.append(f"{name}: topic config {key}={have[0] + ' (' + have[1] + ')' if have else '(not set on the topic)'}"
                                f", expected {value}")
            elif d["configs"].get(key) != value:
                problems.append(f"{name}: kafka-topics.sh --describe shows {key}={d['configs'].get(key)}, expected {value}")
    extra = sorted(set(described) - set(topics) - {"__consumer_offsets"})
    if extra:
        problems.append(f"unexpected topics: {extra}")
    return problems


def assert_state(bindir, bootstrap, topics, what, override=None, attempts=3):
    # describeConfigs is answered from a broker's metadata, which can trail the
    # controller's commit by a moment: look again before failing.
    for attempt in range(attempts):
        problems = state_problems(cluster_state(bindir, bootstrap, topics), topics, override)
        if not problems:
            return
        if attempt + 1 < attempts:
            time.sleep(1)
    raise Failure(f"{what}:\n  " + "\n  ".join(problems))


# --- broker -----------------------------------------------------------------

def read_bootstrap(broker, log):
    deadline = time.monotonic() + BOOTSTRAP_DEADLINE_S
    line = b""
    fd = broker.stdout.fileno()
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure(f"no bootstrap line from meshhook broker in {BOOTSTRAP_DEADLINE_S}s; "
                          f"stderr: {tail(log)}")
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            chunk = os.read(fd, 1)
            if not chunk:
                broker.wait(timeout=10)
                raise Failure(f"meshhook broker exited {broker.returncode} before printing its "
                              f"bootstrap line; stderr: {tail(log)}")
            line += chunk
    text = line.decode().strip()
    match = re.fullmatch(r"bootstrap=(\S+)", text)
    check(match is not None, f"meshhook broker's first line is not bootstrap=HOST:PORT,...: {text!r}")
    check(len(match.group(1).split(",")) == BROKERS, f"expected {BROKERS} brokers in {text!r}")
    return match.group(1)


def tail(path, size=3000):
    try:
        return path.read_text(errors="replace")[-size:].strip() or "(empty)"
    except OSError:
        return "(none)"


def stop_broker(broker):
    # Closing stdin stops it and every JVM it started.
    try:
        broker.stdin.close()
    except OSError:
        pass
    try:
        broker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        broker.terminate()
        try:
            broker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
    broker.stdout.close()


# --- the test ---------------------------------------------------------------

def run_script(script, env):
    return finish(start([str(script)], env), "create-topics.sh", SCRIPT_TIMEOUT_S)


def test(args, tmp, timings):
    source = Path(args.source_dir).resolve()
    meshhook = Path(args.bin_dir).resolve() / "meshhook"
    libs = Path(args.kafka_libs).resolve()
    script = source / "deploy" / "kafka" / "create-topics.sh"
    check(os.access(meshhook, os.X_OK), f"no executable {meshhook} (build the meshhook target)")
    check(libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")),
          f"no Apache Kafka jars in {libs} (run `make kafka`)")
    check(os.access(script, os.X_OK), f"{script} is missing or not executable")

    topics = expected_topics(source)
    bindir = write_wrappers(tmp, libs)

    t = time.monotonic()
    log = tmp / "broker.stderr"
    with open(log, "wb") as err:
        broker = subprocess.Popen(
            [str(meshhook), "broker", "--engine", "apache", "--brokers", str(BROKERS),
             "--no-default-topics", "--kafka-libs", str(libs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, preexec_fn=die_with_parent)
    try:
        bootstrap = read_bootstrap(broker, log)
        timings.append(("cluster start", time.monotonic() - t))

        env = dict(os.environ, KAFKA_BOOTSTRAP=bootstrap, REPLICATION_FACTOR=str(REPLICATION_FACTOR),
                   MIN_INSYNC_REPLICAS=str(MIN_ISR), KAFKA_BIN=str(bindir))

        # 1. An empty cluster: every topic is created.
        t = time.monotonic()
        rc, out, err = run_script(script, env)
        timings.append(("first run", time.monotonic() - t))
        check(rc == 0, f"create-topics.sh on the empty cluster exited {rc}:\n{out}{err}")
        check(not re.search(r"^updated ", out, re.M),
              f"create-topics.sh 'updated' topics on an empty cluster:\n{out}")
        t = time.monotonic()
        assert_state(bindir, bootstrap, topics, "after the first run")

        # 2. A drifted setting, then the script again: every topic updated,
        #    the setting restored.
        tool_ok(tool(bindir, bootstrap, "kafka-configs.sh", "--alter", "--entity-type", "topics",
                     "--entity-name", VICTIM, "--add-config", "min.insync.replicas=1"))
        assert_state(bindir, bootstrap, topics, f"after lowering {VICTIM}'s min.insync.replicas to 1",
                     override={VICTIM: {"min.insync.replicas": "1"}})
        timings.append(("checks + alter", time.monotonic() - t))
        t = time.monotonic()
        rc, out, err = run_script(script, env)
        timings.append(("second run", time.monotonic() - t))
        check(rc == 0, f"create-topics.sh on the existing topics exited {rc}:\n{out}{err}")
        updated = re.findall(r"^updated (\S+)$", out, re.M)
        check(updated == list(topics),
              f"second run: expected `updated <name>` for {list(topics)} in order, got {updated}:\n{out}{err}")
        check("warning:" not in err, f"second run warned although every partition count matches:\n{err}")
        t = time.monotonic()
        assert_state(bindir, bootstrap, topics, "after the second run")
        timings.append(("final check", time.monotonic() - t))
    finally:
        t = time.monotonic()
        stop_broker(broker)
        timings.append(("cluster stop", time.monotonic() - t))
    check(broker.returncode == 0, f"meshhook broker exited {broker.returncode}; stderr: {tail(log)}")
    return topics


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--kafka-libs", required=True)
    args = parser.parse_args()
    started = time.monotonic()
    timings = []
    with tempfile.TemporaryDirectory(prefix="create-topics-apache-") as tmp:
        try:
            topics = test(args, Path(tmp), timings)
        except Failure as e:
            print(f"FAIL: {e}", file=sys.stderr)
            return 1
    print(f"PASS: create-topics.sh on Apache Kafka ({BROKERS} brokers), twice:")
    for name, (partitions, retention) in topics.items():
        print(f"  {name:26} {partitions:3} partitions  RF {REPLICATION_FACTOR}  "
              f"retention {retention // DAY_MS:2} days  min.insync.replicas {MIN_ISR}")
    print(f"  second run restored {VICTIM}'s min.insync.replicas 1 -> {MIN_ISR}")
    print("  " + ", ".join(f"{what} {secs:.1f}s" for what, secs in timings) +
          f"; total {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
