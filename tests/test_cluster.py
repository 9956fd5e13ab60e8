"""The cluster test: two `talkgate serve` nodes behind HAProxy on PostgreSQL, Redis and a bucket,
about ten apps talking through the proxy (half long-polling, half WebSocket), one node killed with
SIGKILL mid-call and restarted (bench/cluster.py, the smaller version); and docs/deployment.md
shows the HAProxy configuration that bench writes."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import IN_CI
from tests.support.timing import scaled

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(
    r"^cluster: (?P<S>\d+) sessions on 2 nodes; node killed: (?P<R>\d+) of (?P<K>\d+) calls recovered, "
    r"(?P<L>\d+) lost, audio lost p99 (?P<X>\d+) ms; service restarts: (?P<E>\d+) app-visible errors, "
    r"(?P<D>\d+) calls lost$"
)


def bench_cluster():
    spec = importlib.util.spec_from_file_location("bench_cluster", ROOT / "bench" / "cluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.unit
def test_the_deployment_page_shows_the_haproxy_configuration_the_cluster_runs():
    nodes = [("node1", "10.0.0.11:8000"), ("node2", "10.0.0.12:8000")]
    config = bench_cluster().haproxy_config(":80", nodes)
    page = (ROOT / "docs" / "deployment.md").read_text()
    assert f"```haproxy\n{config}```" in page


@pytest.mark.cluster
@pytest.mark.realtime
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(300)
def test_ten_apps_through_haproxy_a_node_killed_mid_call_its_calls_recovered(postgres_url, redis_url):
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        if IN_CI:
            pytest.fail("HAProxy is required in CI (make system-deps installs it)")
        pytest.skip("no HAProxy (apt-get install haproxy)")
    args = ["--sessions", "10", "--faults", "kill", "--postgres-url", postgres_url, "--redis-url", redis_url]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cluster.py"), *args],
        capture_output=True,
        text=True,
        timeout=scaled(240),
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    figures = LINE.match(last)
    assert figures is not None, done.stdout[-3000:] + done.stderr[-3000:]
    assert int(figures["S"]) == 10
    assert int(figures["K"]) >= 1, done.stdout  # the killed node held calls
    assert int(figures["L"]) == 0 and int(figures["R"]) == int(figures["K"]), done.stdout
    assert int(figures["X"]) <= 1000, done.stdout
    assert int(figures["D"]) == 0, done.stdout
    assert done.returncode == 0, done.stdout[-3000:]
