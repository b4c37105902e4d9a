"""The Vagrantfile is valid where vagrant is installed (`vagrant validate` needs no box)."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant is not installed here")
def test_vagrantfile_validates():
    proc = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout


def test_vagrantfile_provisions_with_make_setup():
    with open(os.path.join(ROOT, "Vagrantfile")) as fp:
        text = fp.read()
    assert "make setup" in text and "ubuntu/" in text
