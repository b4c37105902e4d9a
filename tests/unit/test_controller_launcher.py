"""`lblab controller`: bad configs and arguments are one-line usage errors; --check summarises."""
import json

import pytest

from controllers import launcher
from lblab_core.errors import UsageError


def write(tmp_path, data):
    path = tmp_path / "ctl.json"
    path.write_text(json.dumps(data))
    return str(path)


GOOD = {"topology": {"name": "lb_lab"},
        "services": {"web": {"vip": "10.0.0.100", "port": 80, "backends": {"h6": 1}}}}


def test_check_prints_a_summary(tmp_path, capsys):
    assert launcher.main(["--config", write(tmp_path, GOOD), "--check", "--ofp-port", "7000"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ofp"] == "127.0.0.1:7000"
    assert summary["services"]["web"] == "10.0.0.100 tcp/80 l4 round_robin 1 backends"


def test_bad_config_is_a_usage_error_naming_the_field(tmp_path):
    bad = json.loads(json.dumps(GOOD))
    bad["services"]["web"]["backends"] = {"h6": -3}
    with pytest.raises(UsageError, match=r"ctl\.json:1: services\.web\.backends\.h6: -3: expected a number >= 0"):
        launcher.main(["--config", write(tmp_path, bad)])


def test_bad_port_override_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="--ofp-port"):
        launcher.main(["--config", write(tmp_path, GOOD), "--ofp-port", "0"])


def test_check_applies_the_port_flags_as_a_start_does(tmp_path):
    with pytest.raises(UsageError, match=r"^controller\.api_port: 8080: is also the OpenFlow "
                                         r"port \(ofp_port\) on 127\.0\.0\.1"):
        launcher.main(["--config", write(tmp_path, GOOD), "--check", "--ofp-port", "8080"])
    with pytest.raises(UsageError, match=r"^--api-port: 70000: expected a number <= 65535$"):
        launcher.main(["--config", write(tmp_path, GOOD), "--check", "--api-port", "70000"])


def test_check_reports_every_problem_of_the_file(tmp_path):
    bad = json.loads(json.dumps(GOOD))
    bad["services"]["web"].update(port=0, mode="l5")
    with pytest.raises(UsageError) as info:
        launcher.main(["--config", write(tmp_path, bad), "--check"])
    assert str(info.value).splitlines() == [
        f"{tmp_path / 'ctl.json'}:1: services.web.port: 0: expected a number >= 1",
        f"{tmp_path / 'ctl.json'}:1: services.web.mode: 'l5': expected one of l2, l3, l4, "
        "group, proactive"]
