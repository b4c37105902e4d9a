"""A reload re-reads the file with the command line's --workers/--listen applied again, so a
file that is valid only with them stays valid on SIGHUP (as --check and the start judged it)."""
import json

from lb_apps.proxy.server import ProxyServer, load_config
from tests.unit.test_proxy_harness import lt  # noqa: F401


def test_reload_applies_the_command_line_override_again(lt, tmp_path):  # noqa: F811
    path = tmp_path / "l7.json"
    path.write_text(json.dumps({"workers": 2, "listen": {"host": "127.0.0.1", "port": 0},
                                "backends": [{"name": "b1", "address": "127.0.0.1",
                                              "port": 9}]}))
    override = {"listen": {"host": "127.0.0.1", "port": 18080}}
    config = load_config(str(path), override)
    assert (config.workers, config.listen.port) == (2, 18080)
    with_flags = ProxyServer(config, str(path), override=override)
    without = ProxyServer(config, str(path))
    assert lt.call(with_flags.reload) is True
    assert lt.call(without.reload) is False  # workers 2 with port 0: refused, old config kept
    assert without.config is config
