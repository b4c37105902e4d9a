"""The controller process stops cleanly on SIGTERM (exit 0) and SIGINT (exit 130).

No switch is needed: the controller is started by ``controllers.harness.ControllerProcess``
(its API and OpenFlow ports on 127.0.0.1) and signalled as the harness and the runner do.
"""
import os
import signal
import socket

import pytest

from controllers import config as ctl_config
from controllers.harness import ControllerProcess
from topologies import graphs

STOP_WAIT_SEC = 30.0


def controller_config():
    return {"topology": ctl_config.graph_to_data(graphs.lb_lab()),
            "services": {"web": {"vip": "10.0.0.100", "port": 80, "mode": "l4",
                                 "backends": {"h6": 1}, "health": {"kind": "none"}}}}


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_signal_stops_the_controller_cleanly(tmp_path, signum, status):
    ctl = ControllerProcess(controller_config(), str(tmp_path))
    with ctl:
        assert ctl.api("GET", "/services")[0] == 200
        os.kill(ctl.proc.pid, signum)
        # the claim is the exit status; the bound only turns a hang into a failure (under a
        # loaded CI a clean stop once took longer than the harness's 5 s grace)
        assert ctl.proc.wait(timeout=STOP_WAIT_SEC) == status, ctl.log_tail()
    log = ctl.log_tail(200)
    assert f"stopping on {signal.Signals(signum).name}" in log, log
    assert "Traceback" not in log, log
    assert refused(ctl.api_port) and refused(ctl.ofp_port)
