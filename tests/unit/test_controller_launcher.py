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
    with pytest.raises(UsageError, match=r"services\.web\.backends\.h6: must be an integer"):
        launcher.main(["--config", write(tmp_path, bad)])


def test_bad_port_override_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="--ofp-port"):
        launcher.main(["--config", write(tmp_path, GOOD), "--ofp-port", "0"])
