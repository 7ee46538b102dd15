"""The local stack's ports: a default layout with no clash, clashes refused before anything
starts, out-of-range ports refused where settings are read, every Kafka node in status."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from fraudstream.cli import main
from fraudstream.deploy.local import LocalStack, StackConfig, StackError, stack_from_settings
from fraudstream.deploy.local.process import ManagedProcess
from fraudstream.settings import Settings, SettingsError

#: Ports no developer stack uses, so nothing on this machine answers on them.
FREE = 29300


def never_start(*_: object) -> None:
    raise AssertionError("nothing may start when the ports are wrong")


def forbid_starts(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.kafka, "start", never_start)
    for server in (stack.redis, stack.prometheus, stack.alertmanager):  # frozen dataclasses
        monkeypatch.setattr(type(server), "start", never_start)


def test_default_three_node_layout_clashes_with_no_default_port(tmp_path: Path) -> None:
    stack = stack_from_settings(Settings(state_dir=tmp_path), nodes=3)
    stack.check_ports()  # raises on a clash
    kafka = dict(stack.kafka.ports())
    assert kafka["kafka-1"] == 9092  # the default bootstrap stays where it was
    defaults = Settings()
    others = {defaults.redis_port, defaults.prometheus_port, defaults.alertmanager_port,
              defaults.api_port, defaults.supervisor_port,
              *(defaults.worker_web_port + n for n in range(1, 17))}
    assert not others & set(kafka.values())


def test_two_services_on_one_port_are_refused_before_anything_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = LocalStack(StackConfig(root=tmp_path, kafka_port=FREE, kafka_nodes=3,
                                   redis_port=FREE + 1, prometheus_port=FREE + 2,
                                   alertmanager_port=FREE + 100))
    forbid_starts(stack, monkeypatch)
    with pytest.raises(StackError) as caught:
        stack.up()
    message = str(caught.value)
    assert f"kafka-2 and alertmanager would both use port {FREE + 100}" in message
    assert "FRAUDSTREAM_ALERTMANAGER_PORT" in message and "--help" not in message
    assert "\n" not in message


def test_a_derived_port_past_65535_is_refused(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    stack = LocalStack(StackConfig(root=tmp_path, kafka_port=65000, kafka_nodes=3,
                                   redis_port=FREE + 1, prometheus_port=FREE + 2,
                                   alertmanager_port=FREE + 3))
    forbid_starts(stack, monkeypatch)
    with pytest.raises(StackError, match="kafka-1 controller would use port 66000"):
        stack.up(("kafka",))


def test_a_taken_port_is_found_before_any_service_starts(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    stack = LocalStack(StackConfig(root=tmp_path, kafka_port=FREE, redis_port=FREE + 1,
                                   prometheus_port=FREE + 2, alertmanager_port=FREE + 3))
    forbid_starts(stack, monkeypatch)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", FREE + 1))
        squatter.listen()
        with pytest.raises(StackError, match=f"port {FREE + 1} \\(redis\\).*already in use.*"
                                             "FRAUDSTREAM_\\*_PORT environment variables"):
            stack.up(("kafka", "redis"))


@pytest.mark.parametrize(("variable", "value"), [("FRAUDSTREAM_KAFKA_PORT", "99999"),
                                                 ("FRAUDSTREAM_REDIS_PORT", "-1"),
                                                 ("FRAUDSTREAM_API_PORT", "0")])
def test_out_of_range_ports_are_refused_where_settings_are_read(variable: str,
                                                                value: str) -> None:
    with pytest.raises(SettingsError, match=f"{variable} is {value}; use a port from 1 to 65535"):
        Settings.from_env({variable: value})


def test_port_65535_is_accepted() -> None:
    assert Settings.from_env({"FRAUDSTREAM_KAFKA_PORT": "65535"}).kafka_port == 65535


def test_stack_status_with_a_bad_port_is_a_one_line_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_PORT", "99999")
    monkeypatch.setenv("FRAUDSTREAM_STATE_DIR", str(tmp_path / "state"))
    assert main(["stack", "status"]) == 2
    err = capsys.readouterr().err
    assert err == ("fraudstream stack: error: FRAUDSTREAM_KAFKA_PORT is 99999; use a port "
                   "from 1 to 65535 (default 9092)\n")


def test_status_shows_every_kafka_node_with_a_pid_file(tmp_path: Path) -> None:
    stack = LocalStack(StackConfig(root=tmp_path, kafka_port=FREE))  # one node configured
    node3 = ManagedProcess("kafka-3", stack.kafka_node(1).run_dir)
    node3.start([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        rows = {s.name: s for s in stack.status()}
        assert rows["kafka-3"].running and rows["kafka-3"].pid == node3.pid()
        assert rows["kafka-3"].address == f"127.0.0.1:{FREE + 200}"
        assert not rows["kafka-1"].running and "kafka-2" not in rows
    finally:
        node3.stop(timeout=2)
