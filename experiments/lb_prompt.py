"""The ``lb`` commands at the ``mininet>`` prompt of ``lblab shell`` (and ``lblab lab start``).

    lb stats              the balancer's counters per backend
    lb drain b2           no new connections for b2 (open ones go on)
    lb weight b3 4        b3's weight becomes 4 (0 drains)
    lb flows [s1]         the OpenFlow rules of a switch (every switch without a name)
    lb conns              open connections per backend
    lb help               this list

They are thin wrappers: at L4 over the controller's JSON API (controllers/api.py) and Open
vSwitch's connection tracker (``ovs-appctl dpctl/dump-conntrack``), at L7 over the builtin
proxy's stats endpoint and its reload (the runner's own weight change: the config rewritten,
SIGHUP, every worker's reload confirmed). The parsing and the formatting here are pure and
unit-tested; :class:`LbCommands` does the calls; :func:`with_lb_commands` adds ``do_lb`` to a
Mininet CLI class, and :func:`open_prompt` opens the prompt with it.
"""
import json
import re
import shlex
import subprocess

from controllers.config import MAX_WEIGHT
from experiments import run_plan as plan
from lblab_core.config import did_you_mean
from lblab_core.errors import UsageError
from topologies import graphs

COMMANDS = {
    "stats": ("", "the balancer's counters per backend (controller API / proxy stats)"),
    "drain": ("BACKEND", "no new connections for BACKEND; open ones go on (weight 0)"),
    "weight": ("BACKEND N", f"BACKEND's weight becomes N (0..{MAX_WEIGHT}; 0 drains)"),
    "flows": ("[SWITCH]", "the OpenFlow rules of SWITCH (every switch without one)"),
    "conns": ("", "open connections per backend (L4: conntrack entries; L7: requests in "
                  "flight)"),
    "help": ("", "this list"),
}
API_TIMEOUT_SEC = 3.0
# Conntrack states of a connection still open (the others are closing or closed).
OPEN_STATES = ("SYN_SENT", "SYN_RECV", "ESTABLISHED")
_CT_REPLY = re.compile(r"reply=\(src=([0-9.]+),")
_CT_STATE = re.compile(r"state=([A-Z_0-9]+)")
_CT_ZONE = re.compile(r"zone=([0-9]+)")


class LbError(UsageError):
    """A wrong ``lb`` command or one the running balancer cannot do: printed as one line."""


def help_text():
    """Return the ``lb help`` text."""
    width = max(len(f"lb {name} {args}".rstrip()) for name, (args, _) in COMMANDS.items())
    lines = [f"  {f'lb {name} {args}'.rstrip():<{width}}  {what}"
             for name, (args, what) in COMMANDS.items()]
    return "\n".join(["the balancer at the prompt (backends by spec name, b1, or host, h6):",
                      *lines])


def parse(line):
    """Split an ``lb`` command line into (command, args), checked.

    Args:
        line (str): what follows ``lb`` at the prompt.
    Returns:
        tuple[str, tuple]: the command and its arguments (``weight`` gets an int).
    Raises:
        LbError: an unknown command, a missing or extra argument, a weight out of range.
    """
    try:
        words = shlex.split(line or "")
    except ValueError as exc:
        raise LbError(f"lb: {exc}") from None
    if not words:
        return "help", ()
    command, args = words[0], tuple(words[1:])
    if command not in COMMANDS:
        raise LbError(f"lb: unknown command {command!r}; expected one of "
                      f"{', '.join(COMMANDS)}{did_you_mean(command, COMMANDS)}")
    usage = f"lb {command} {COMMANDS[command][0]}".rstrip()
    wanted = {"drain": (1, 1), "weight": (2, 2), "flows": (0, 1)}.get(command, (0, 0))
    if not wanted[0] <= len(args) <= wanted[1]:
        raise LbError(f"{usage}: expected {_count(wanted)}, got {len(args)} ({' '.join(args)})"
                      if args else f"{usage}: expected {_count(wanted)}")
    if command == "weight":
        text = args[1]
        if not re.fullmatch(r"[0-9]{1,6}", text) or int(text) > MAX_WEIGHT:
            raise LbError(f"{usage}: weight {text!r}: expected an integer 0..{MAX_WEIGHT}")
        args = (args[0], int(text))
    return command, args


def _count(wanted):
    low, high = wanted
    if low == high:
        return f"{low} argument{'s' if low != 1 else ''}"
    return f"{low} to {high} arguments"


def backend_of(name, backends):
    """Return (spec name, host) of a backend given by spec name (b2) or host (h6).

    Args:
        name (str): what the user typed.
        backends (dict[str, str]): spec backend name -> host, in spec order.
    Raises:
        LbError: neither a spec backend nor a backend host.
    """
    if name in backends:
        return name, backends[name]
    for spec_name, host in backends.items():
        if host == name:
            return spec_name, host
    choices = [f"{n} ({h})" for n, h in backends.items()]
    raise LbError(f"lb: unknown backend {name!r}; expected one of {', '.join(choices)}"
                  f"{did_you_mean(name, list(backends) + list(backends.values()))}")


def _table(header, rows):
    cols = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cols) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cols)


def _shown(value):
    return "-" if value is None else value


def format_l4_stats(services, stats, backends, service=plan.SERVICE_NAME):
    """``lb stats`` at L4 from the controller's ``GET /services`` and ``GET /stats``.

    Args:
        services (dict): ``GET /services``.
        stats (dict): ``GET /stats``.
        backends (dict[str, str]): spec backend name -> host.
        service (str): the service the lab balances.
    """
    svc = services[service]
    counters = stats["services"][service]
    names = {host: name for name, host in backends.items()}
    rows = []
    for host, b in svc["backends"].items():
        c = counters["backends"].get(host, {})
        rows.append([names.get(host, host), host, b["ip"], b["weight"],
                     "draining" if b["draining"] else b["state"], _shown(b.get("in_flight")),
                     _shown(c.get("active_flows")), _shown(c.get("flows_total")),
                     c.get("packets", 0), c.get("bytes", 0)])
    head = (f"service {service}: {svc['vip']}:{svc['port']} mode {svc['mode']}, algorithm "
            f"{svc['algorithm']}, data path {svc['data_path']}; packet-ins "
            f"{counters['packet_ins']}")
    return head + "\n" + _table(["backend", "host", "ip", "weight", "state", "in_flight",
                                 "active_flows", "flows_total", "packets", "bytes"], rows)


def format_l7_stats(workers, backends):
    """``lb stats`` at L7 from each builtin proxy worker's stats (summed over the workers).

    Args:
        workers (list[dict]): one stats document per worker.
        backends (dict[str, str]): spec backend name -> host.
    """
    rows = {}
    weights = {}
    for doc in workers:
        for group in doc.get("groups", {}).values():
            for name, b in group.get("balancer", {}).items():
                weights[name] = b.get("weight")
        for name, b in doc.get("backends", {}).items():
            row = rows.setdefault(name, {"requests": 0, "errors": 0, "in_flight": 0,
                                         "health": set(), "p50": [], "p99": []})
            row["requests"] += b.get("requests", 0)
            row["errors"] += b.get("errors", 0)
            row["in_flight"] += b.get("in_flight", 0)
            health = b.get("health") or {}
            row["health"].add(health.get("state", "up") if isinstance(health, dict) else health)
            lat = b.get("latency_ms") or {}
            if lat.get("count"):
                row["p50"].append(lat["p50"])
                row["p99"].append(lat["p99"])
    out = []
    for name, r in rows.items():
        out.append([name, backends.get(name, "-"), _shown(weights.get(name)), r["requests"],
                    r["errors"], r["in_flight"], "/".join(sorted(map(str, r["health"]))),
                    max(r["p50"]) if r["p50"] else "-", max(r["p99"]) if r["p99"] else "-"])
    algorithms = sorted({g.get("algorithm", "?") for d in workers
                         for g in d.get("groups", {}).values()})
    local = sum(sum(d.get("local_responses", {}).values()) for d in workers)
    head = (f"builtin proxy: {len(workers)} worker(s), algorithm {', '.join(algorithms)}; "
            f"client connections {sum(d.get('connections', 0) for d in workers)}; local "
            f"answers {local}")
    return head + "\n" + _table(["backend", "host", "weight", "requests", "errors",
                                 "in_flight", "health", "p50_ms", "p99_ms"], out)


def conntrack_counts(text, backend_ips, zone=None):
    """Count conntrack entries per backend from ``ovs-appctl dpctl/dump-conntrack`` output.

    An entry's reply source is the backend (the NAT rewrote the destination); ``zone`` keeps
    one service's entries.

    Args:
        text (str): the dump, one entry a line.
        backend_ips (dict[str, str]): backend IP -> its label.
        zone (int|None): the service's conntrack zone (None: every zone).
    Returns:
        dict[str, dict[str, int]]: label -> {"open": n, "closing": n}, every backend present.
    """
    counts = {label: {"open": 0, "closing": 0} for label in backend_ips.values()}
    for line in text.splitlines():
        reply = _CT_REPLY.search(line)
        if reply is None or reply.group(1) not in backend_ips:
            continue
        if zone is not None:
            found = _CT_ZONE.search(line)
            if found is None or int(found.group(1)) != zone:
                continue
        state = _CT_STATE.search(line)
        kind = "open" if state is None or state.group(1) in OPEN_STATES else "closing"
        counts[backend_ips[reply.group(1)]][kind] += 1
    return counts


def format_l4_conns(counts, services, backends, service=plan.SERVICE_NAME):
    """``lb conns`` at L4: conntrack entries per backend beside the controller's counts."""
    svc = services[service]
    names = {host: name for name, host in backends.items()}
    rows = [[names.get(host, host), host, counts.get(host, {}).get("open", 0),
             counts.get(host, {}).get("closing", 0), _shown(b.get("in_flight"))]
            for host, b in svc["backends"].items()]
    return (f"open connections to {svc['vip']}:{svc['port']} (conntrack: open = "
            f"{'/'.join(OPEN_STATES)}; the controller's in_flight where its algorithm counts)\n"
            + _table(["backend", "host", "open", "closing", "in_flight"], rows))


def format_l7_conns(workers, backends):
    """``lb conns`` at L7: requests in flight per backend, summed over the workers."""
    in_flight = {}
    for doc in workers:
        for name, b in doc.get("backends", {}).items():
            in_flight[name] = in_flight.get(name, 0) + b.get("in_flight", 0)
    rows = [[name, backends.get(name, "-"), n] for name, n in in_flight.items()]
    clients = sum(d.get("connections", 0) for d in workers)
    return (f"builtin proxy: {clients} client connection(s); requests in flight per backend\n"
            + _table(["backend", "host", "in_flight"], rows))


class LbCommands:
    """The ``lb`` commands against one running lab (an ``experiments.run_lab.Run``).

    Args:
        run: the run whose lab is up (its balancer, roles, graph, controller or proxy).
        ovs (callable|None): runs ``ovs-appctl ARGS`` (a list) and returns its output.
    """

    def __init__(self, run, ovs=None):
        self.run = run
        self._ovs = ovs or _ovs

    @property
    def backends(self):
        """dict[str, str]: spec backend name -> host."""
        return dict(self.run.roles.backends)

    def execute(self, line):
        """Run one ``lb`` command line; return its output text.

        Raises:
            LbError: a wrong command, or one this balancer cannot do (one line).
        """
        command, args = parse(line)
        return getattr(self, f"_{command}")(*args)

    # -- commands ----------------------------------------------------------------------------
    def _help(self):
        return help_text()

    def _stats(self):
        if self._layer() == "l4":
            return format_l4_stats(self._api("GET", "/services"), self._api("GET", "/stats"),
                                   self.backends)
        return format_l7_stats(self._proxy_stats(), self.backends)

    def _drain(self, backend):
        return self._set_weight(backend, 0)

    def _weight(self, backend, weight):
        return self._set_weight(backend, weight)

    def _set_weight(self, backend, weight):
        name, host = backend_of(backend, self.backends)
        what = "drained" if weight == 0 else f"weight {weight}"
        if self._layer() == "l4":
            body = {"drain": True} if weight == 0 else {"weight": weight}
            self._api("PUT", f"/services/{plan.SERVICE_NAME}/backends/{host}", body)
            return f"{name} ({host}) {what} (controller API)"
        self._builtin("lb weight")
        why = self.run._reload_weight(name, weight)
        if why:
            raise LbError(f"lb: {name}: {why}")
        return f"{name} ({host}) {what} (proxy config rewritten and reloaded)"

    def _flows(self, switch=None):
        switches = graphs.switches(self.run.graph)
        if switch is not None and switch not in switches:
            raise LbError(f"lb flows: unknown switch {switch!r}; expected one of "
                          f"{', '.join(switches)}{did_you_mean(switch, switches)}")
        out = []
        for name in [switch] if switch else switches:
            dump = _run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", name])
            out.append(f"-- {name}\n{dump.rstrip()}")
        return "\n".join(out)

    def _conns(self):
        if self._layer() == "l4":
            services = self._api("GET", "/services")
            svc = services[plan.SERVICE_NAME]
            ips = {b["ip"]: host for host, b in svc["backends"].items()}
            counts = conntrack_counts(self._ovs(["dpctl/dump-conntrack"]), ips,
                                      svc.get("conntrack_zone"))
            return format_l4_conns(counts, services, self.backends)
        return format_l7_conns(self._proxy_stats(), self.backends)

    # -- calls ---------------------------------------------------------------------------------
    def _layer(self):
        return self.run.balancer.layer

    def _api(self, method, path, body=None):
        controller = self.run.controller
        if controller is None:
            raise LbError("lb: the controller is not running")
        try:
            status, data = controller.api(method, path, body, timeout=API_TIMEOUT_SEC)
        except OSError as exc:
            raise LbError(f"lb: the controller API did not answer {method} {path}: {exc}") \
                from None
        if status >= 400:
            error = data.get("error") if isinstance(data, dict) else data
            raise LbError(f"lb: the controller refused {method} {path}: {error}")
        return data

    def _builtin(self, what):
        engine = self.run.balancer.engine
        if engine != "builtin":
            raise LbError(f"lb: {what} needs the controller or the builtin proxy; balancer "
                          f"{self.run.balancer.name!r} runs {engine} (use its own tools)")
        if self.run.proxy is None or self.run.proxy.poll() is not None:
            raise LbError("lb: the builtin proxy is not running")

    def _proxy_stats(self):
        self._builtin("lb stats/conns")
        workers = self.run._proxy_config().get("workers", 1)
        host = self.run.lab.host(self.run.roles.lb)
        docs = []
        for i in range(workers):
            out = host.cmd(f"curl -s --max-time 2 http://127.0.0.1:{plan.PROXY_STATS_PORT + i}/")
            try:
                docs.append(json.loads(out))
            except ValueError:
                raise LbError(f"lb: the proxy's stats (worker {i}, port "
                              f"{plan.PROXY_STATS_PORT + i}) did not answer: {out.strip()[:80]!r}"
                              ) from None
        return docs


def _run(argv):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LbError(f"lb: {argv[0]} failed: {exc}") from None
    if done.returncode != 0:
        raise LbError(f"lb: {' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _ovs(args):
    return _run(["ovs-appctl", *args])


def with_lb_commands(cli_class, run, commands=None):
    """Return a subclass of a Mininet CLI class with ``lb`` (``do_lb``, ``help_lb``).

    Args:
        cli_class (type): ``mininet.cli.CLI`` or a subclass.
        run: the running lab (``experiments.run_lab.Run``).
        commands (LbCommands|None): what executes them (default: ``LbCommands(run)``).
    Returns:
        type: the subclass; ``cls(net)`` opens the prompt (Mininet's CLI runs on creation;
        ``cls(net, script=path)`` runs a file of commands, then returns).
    """
    lb = commands or LbCommands(run)

    class LbCLI(cli_class):
        def do_lb(self, line):
            """lb stats | drain B | weight B N | flows [S] | conns | help: the balancer."""
            try:
                text = lb.execute(line)
            except UsageError as exc:
                text = str(exc)
            self.stdout.write(text + "\n")
            self.stdout.flush()

        def help_lb(self):
            self.stdout.write(help_text() + "\n")

    LbCLI.lb = lb
    return LbCLI


def open_prompt(run, **cli_kwargs):
    """Open Mininet's prompt in ``run``'s lab with the ``lb`` commands; return when left."""
    from mininet.cli import CLI
    return with_lb_commands(CLI, run)(run.lab.net, **cli_kwargs)
