"""The Vagrantfile for a class: what can be checked without booting a VM.

Nothing here boots a VM (no VirtualBox, libvirt, VMware or Parallels on this machine). Checked:
Ruby's syntax (``ruby -c``); the file evaluated by Ruby against a recording stand-in of
Vagrant's configuration DSL, for an x86-64 and an arm64 host (which box each provider gets, the
provision script's text, which ``bash -n`` then parses); ``vagrant validate`` per provider where
vagrant and the provider's plugin are installed (skipped otherwise); and that the Makefile and
scripts/setup.sh put the virtualenv where ``LBLAB_VENV`` says.
"""
import json
import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VAGRANTFILE = os.path.join(REPO, "Vagrantfile")
PROVIDERS = ("virtualbox", "libvirt", "vmware_desktop", "parallels")
# Boxes published for each provider (and CPU): ubuntu/jammy64 is VirtualBox-only.
EXPECTED_BOXES = {
    "x86_64": {"virtualbox": "ubuntu/jammy64", "libvirt": "generic/ubuntu2204",
               "vmware_desktop": "bento/ubuntu-22.04", "parallels": "bento/ubuntu-22.04"},
    "arm64": {"vmware_desktop": "bento/ubuntu-22.04-arm64",
              "parallels": "bento/ubuntu-22.04-arm64"},
}

# A stand-in for Vagrant's DSL: every call and assignment is recorded under its path
# ("config.vm.box", "provider.libvirt.cpus", "override.libvirt.vm.box", ...); a provider
# block gets the provider's config and an override config, as Vagrant passes them.
STUB = r'''
require "json"
$records = []
class Rec
  def initialize(path); @path = path; end
  def method_missing(name, *args, **kw, &blk)
    n = name.to_s
    if n.end_with?("=")
      $records << [(@path + [n.chomp("=")]).join("."), args[0]]
      return args[0]
    end
    if n == "provider" && blk
      blk.call(Rec.new(["provider", args[0].to_s]), Rec.new(["override", args[0].to_s]))
      return nil
    end
    $records << [(@path + [n]).join("."), {"args" => args.map(&:to_s),
                                           "kw" => kw.transform_keys(&:to_s)}] unless args.empty?
    blk.call(Rec.new(@path + [n])) if blk
    Rec.new(@path + [n])
  end
  def respond_to_missing?(*) = true
end
module Vagrant
  def self.configure(version); yield Rec.new(["config"]); end
end
RbConfig::CONFIG["host_cpu"] = ARGV[1]
load ARGV[0]
puts JSON.generate($records)
'''

needs_ruby = pytest.mark.skipif(shutil.which("ruby") is None,
                                reason="ruby is not installed (apt-get install ruby)")


def evaluate(host_cpu, tmp_path):
    """Return the recorded configuration of the Vagrantfile on a host of ``host_cpu``."""
    stub = tmp_path / "stub.rb"
    stub.write_text(STUB)
    out = subprocess.run(["ruby", str(stub), VAGRANTFILE, host_cpu], capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def box_of(records, provider):
    """The box a provider gets: its override, else the top-level box."""
    boxes = {path: value for path, value in records if path.endswith("vm.box")}
    return boxes.get(f"override.{provider}.vm.box", boxes["config.vm.box"])


@needs_ruby
def test_ruby_syntax():
    out = subprocess.run(["ruby", "-c", VAGRANTFILE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Syntax OK" in out.stdout, out.stderr


@needs_ruby
@pytest.mark.parametrize("host_cpu", ["x86_64", "arm64"])
def test_each_provider_gets_a_box_published_for_it(host_cpu, tmp_path):
    records = evaluate(host_cpu, tmp_path)
    for provider, box in EXPECTED_BOXES[host_cpu].items():
        assert box_of(records, provider) == box, provider
    # the known trap: a VirtualBox-only box under another provider
    for provider in PROVIDERS[1:]:
        assert box_of(records, provider) != "ubuntu/jammy64", provider
    for provider in PROVIDERS:
        settings = {p.split(".")[-1]: v for p, v in records
                    if p.startswith(f"provider.{provider}.")}
        assert settings.get("cpus") == 2 and settings.get("memory") == 4096, provider


@needs_ruby
def test_provision_script_parses_and_keeps_the_venv_outside_the_synced_folder(tmp_path):
    records = evaluate("x86_64", tmp_path)
    [provision] = [v for p, v in records if p == "config.vm.provision"]
    venv = provision["kw"]["env"]
    script = provision["kw"]["inline"]
    assert venv["LBLAB_VENV"].startswith("/home/vagrant/")      # not under /vagrant
    assert "make setup" in script and "sudoers.d" in script
    path = tmp_path / "provision.sh"
    path.write_text(script)
    out = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def _plugin_missing(provider):
    if provider == "virtualbox":
        return None
    plugin = {"libvirt": "vagrant-libvirt", "vmware_desktop": "vagrant-vmware-desktop",
              "parallels": "vagrant-parallels"}[provider]
    out = subprocess.run(["vagrant", "plugin", "list"], capture_output=True, text=True,
                         timeout=120)
    return None if plugin in out.stdout else f"vagrant plugin {plugin} is not installed"


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant is not installed here")
def test_vagrant_validate_any_provider():
    out = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "validated successfully" in out.stdout, out.stdout + out.stderr


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant is not installed here")
@pytest.mark.parametrize("provider", PROVIDERS)
def test_vagrant_validate(provider):
    reason = _plugin_missing(provider)
    if reason:
        pytest.skip(reason)
    env = dict(os.environ, VAGRANT_DEFAULT_PROVIDER=provider)
    out = subprocess.run(["vagrant", "validate"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("venv", [None, "/home/vagrant/lblab-venv"])
def test_make_uses_lblab_venv(venv):
    env = {k: v for k, v in os.environ.items() if k != "LBLAB_VENV"}
    if venv:
        env["LBLAB_VENV"] = venv
    out = subprocess.run(["make", "-n", "unit", "clean"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    want = venv or ".venv"
    assert f"{want}/bin/python -m pytest tests/unit" in out.stdout
    assert f"{want}/bin/lblab clean" in out.stdout


def test_setup_and_run_tests_read_lblab_venv():
    for script in ("scripts/setup.sh", "scripts/run-tests.sh"):
        text = open(os.path.join(REPO, script), encoding="utf-8").read()
        code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        assert "LBLAB_VENV:-.venv" in text, script
        # no path into the default virtualenv but through the variable
        assert not [line for line in code if ".venv/" in line and "LBLAB_VENV" not in line], \
            script
        out = subprocess.run(["bash", "-n", os.path.join(REPO, script)], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr


def test_setup_creates_the_venv_where_lblab_venv_says(tmp_path):
    """Run setup.sh's virtualenv step alone (its section 2) with LBLAB_VENV in a temp folder."""
    text = open(os.path.join(REPO, "scripts/setup.sh"), encoding="utf-8").read()
    start = text.index("VENV=${LBLAB_VENV:-.venv}")
    step = text[start:text.index("fi\n", start) + 3]
    venv = tmp_path / "venv"
    out = subprocess.run(["bash", "-c", "say() { echo \"$*\"; }; " + step], cwd=tmp_path,
                         env=dict(os.environ, LBLAB_VENV=str(venv)), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (venv / "bin" / "python").exists() and not (tmp_path / ".venv").exists()
