#!/usr/bin/env bash
# make setup: idempotent installation of everything lblab needs on Debian 12 / Ubuntu 22.04+.
#  1. Debian/Ubuntu packages (only the missing ones are installed)
#  2. the virtualenv ($LBLAB_VENV, default .venv) from the distribution's /usr/bin/python3 with
#     --system-site-packages (Mininet is a Debian package for that Python), the project installed
#     editable with its test extras
#  3. Open vSwitch running (systemd where it runs, else ovs-ctl directly, as in containers/CI)
#  4. a self-signed lab TLS certificate in .lab/tls/ for the L7 proxy's TLS termination
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "lblab setup needs root (it installs packages and starts Open vSwitch): run 'sudo make setup' (as root: 'make setup')."
command -v apt-get >/dev/null || die "apt-get not found: lblab's setup supports Debian 12 and Ubuntu 22.04/24.04 (or use the Vagrant VM: 'vagrant up')."

# --- 1. packages -------------------------------------------------------------------------
PACKAGES=(mininet openvswitch-switch openvswitch-common iperf3 haproxy wrk ethtool curl
          python3-venv python3-pip iproute2 iputils-ping openssl procps psmisc tcpdump
          ruby)  # ruby: the Vagrantfile check (tests/unit/test_vagrant.py, ruby -c)
# Debian 12 / Ubuntu ship the small nginx as nginx-light; newer releases only have nginx.
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v nginx >/dev/null; then missing+=(NGINX); fi
# The live view's browser test (tests/emulation/test_live_browser.py): chromium headless and its
# chromedriver, driven by Debian's python3-selenium (the venv sees it: --system-site-packages).
# Debian names them chromium/chromium-driver; Ubuntu only has chromium-browser (a snap wrapper).
dpkg-query -W -f='${Status}' python3-selenium 2>/dev/null | grep -q "install ok installed" || missing+=(python3-selenium)
if ! command -v chromedriver >/dev/null || ! command -v chromium chromium-browser >/dev/null; then missing+=(BROWSER); fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  if [[ " ${missing[*]} " == *" NGINX "* ]]; then
    missing=("${missing[@]/NGINX/}")
    if apt-cache show nginx-light >/dev/null 2>&1; then missing+=(nginx-light); else missing+=(nginx); fi
  fi
  if [[ " ${missing[*]} " == *" BROWSER "* ]]; then
    missing=("${missing[@]/BROWSER/}")
    if apt-cache show chromium-driver >/dev/null 2>&1; then missing+=(chromium chromium-driver)
    else missing+=(chromium-browser chromium-chromedriver); fi
  fi
  apt-get install -y -q --no-install-recommends ${missing[*]}
else
  say "packages: all present"
fi

# openssh-server: only its sshd binary is used, by the cluster test's private sshd (its own
# config, host key and port; docs/scale.md). The system's sshd stays disabled and its
# configuration as the package ships it: a temporary policy-rc.d keeps Debian's postinst from
# starting it, and it is disabled again only if this install is what enabled it.
if ! dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q "install ok installed"; then
  say "installing openssh-server (sshd binary for the cluster test; the system's sshd is left disabled)"
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d; made_policy=
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made_policy=1; fi
  [ ${#missing[@]} -gt 0 ] || apt-get update -q
  apt-get install -y -q --no-install-recommends openssh-server || { [ -z "$made_policy" ] || rm -f "$policy"; die "apt-get install openssh-server failed"; }
  [ -z "$made_policy" ] || rm -f "$policy"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
  elif command -v systemctl >/dev/null; then
    # no systemd running (containers): systemctl still removes the postinst's enable links offline
    systemctl disable ssh.service ssh.socket >/dev/null 2>&1 || true
  elif command -v update-rc.d >/dev/null; then
    update-rc.d ssh disable >/dev/null 2>&1 || true
  fi
fi

# --- 2. virtualenv -----------------------------------------------------------------------
# LBLAB_VENV puts it elsewhere (the Vagrant VM: outside the synced folder, which refuses symlinks)
VENV=${LBLAB_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV from /usr/bin/python3 (--system-site-packages, for Debian's Mininet)"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
stamp=$VENV/.lblab-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! "$VENV/bin/python" -c "import experiments.cli" 2>/dev/null; then
  say "installing lblab (editable) and its Python dependencies into $VENV"
  # pip's and setuptools' chatter goes to a log; it is shown only when the install fails.
  log=$VENV/pip-install.log
  if ! { "$VENV/bin/python" -m pip install -q --upgrade pip &&
         "$VENV/bin/python" -m pip install -q -e '.[test]'; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "pip install failed (full log: $log)"
  fi
  echo "$want" > "$stamp"
else
  say "$VENV: up to date"
fi
"$VENV/bin/python" -c "import mininet.net" || die "$VENV cannot import mininet: is the 'mininet' package installed for /usr/bin/python3?"

# --- 3. Open vSwitch ---------------------------------------------------------------------
if ovs-vsctl --timeout=5 show >/dev/null 2>&1; then
  say "Open vSwitch: running"
else
  say "starting Open vSwitch"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl start openvswitch-switch
  else
    # No systemd (containers, CI): ovs-ctl starts ovsdb-server and ovs-vswitchd itself. It
    # loads the kernel module where one exists; otherwise lblab uses the userspace datapath.
    /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null 2>&1 || true
  fi
  ovs-vsctl --timeout=10 show >/dev/null || die "Open vSwitch did not start: see /var/log/openvswitch/"
fi

# --- 4. lab TLS certificate --------------------------------------------------------------
if [ ! -f .lab/tls/lab.crt ]; then
  say "generating the self-signed lab certificate .lab/tls/lab.crt"
  mkdir -p .lab/tls
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=lblab" \
    -addext "subjectAltName=DNS:lblab,DNS:localhost,IP:127.0.0.1,IP:10.0.0.100" \
    -keyout .lab/tls/lab.key -out .lab/tls/lab.crt >/dev/null 2>&1
  cat .lab/tls/lab.crt .lab/tls/lab.key > .lab/tls/lab.pem
fi
say "ready ($("$VENV/bin/lblab" --version))"
