"""LBLAB_NODES=2 vagrant up: two VMs on a private network with root's cluster key exchanged, for
--servers; without LBLAB_NODES the Vagrantfile defines no extra machine (evaluated with the
recording Vagrant stand-in of test_vagrant.py)."""
import json
import os
import shutil
import subprocess

import pytest

from tests.unit.test_vagrant import STUB, VAGRANTFILE

pytestmark = pytest.mark.skipif(shutil.which("ruby") is None,
                                reason="ruby is not installed (apt-get install ruby)")


def _records(tmp_path, nodes):
    stub = tmp_path / "stub.rb"
    stub.write_text(STUB)
    env = dict(os.environ)
    env.pop("LBLAB_NODES", None)
    if nodes is not None:
        env["LBLAB_NODES"] = str(nodes)
    out = subprocess.run(["ruby", str(stub), VAGRANTFILE, "x86_64"], capture_output=True,
                         text=True, timeout=60, check=True, env=env)
    return json.loads(out.stdout)


def test_no_extra_machines_by_default(tmp_path):
    assert not [p for p, _ in _records(tmp_path, None) if p == "config.vm.define"]
    assert not [p for p, _ in _records(tmp_path, 1) if p == "config.vm.define"]


def test_two_nodes_on_a_private_network_with_the_cluster_key_provisioned(tmp_path):
    records = _records(tmp_path, 2)
    defined = [v["args"][0] for p, v in records if p == "config.vm.define"]
    assert defined == ["lblab1", "lblab2"]
    ips = [v["kw"]["ip"] for p, v in records if p == "config.vm.define.vm.network"]
    assert len(set(ips)) == 2
    scripts = [v["kw"]["inline"] for p, v in records if p == "config.vm.define.vm.provision"]
    assert len(scripts) == 2
    for script in scripts:
        for part in ("authorized_keys", "PermitTunnel ethernet", "Host lblab1", "Host lblab2"):
            assert part in script
        path = tmp_path / "cluster.sh"
        path.write_text(script)
        out = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
