"""Pure planning of one experiment run: host roles, addresses, and the config each process gets;
and of a resumed batch: which runs are kept, run again and moved aside (``resume_plan``).

Nothing here starts a process or touches the network; ``experiments.run_lab`` executes the plan.
"""
import ipaddress
import re
from dataclasses import dataclass

from experiments import spec as spec_mod
from lb_apps.custom_balancer import base_dir
from lb_apps.custom_balancer import resolve as resolve_balancer_file
from lb_apps.l7config import absolute_balancer_files
from topologies import graphs

VIP = "10.254.0.1"            # the L4 service address: in 10/8 with the hosts, used by no host
SERVICE_PORT = 80
BACKEND_PORT = 80
PROXY_PORT = 80
PROXY_STATS_PORT = 9901
IPERF_PORT = 5201
SERVICE_NAME = "web"
_TS_RE = re.compile(r"^\d{8}T\d{6}$")


class PlanError(ValueError):
    """The spec cannot be mapped onto its topology (names what is missing)."""


@dataclass(frozen=True)
class Roles:
    """Which hosts play which part: ``backends`` maps spec backend name -> host."""
    clients: tuple
    lb: str | None
    backends: dict


def assign_roles(graph, backends):
    """Map the spec's backends, the lb and the clients onto hosts of the graph.

    Graphs with roles (lb_lab, dumbbell) use them. Role-less graphs (single, tree, …) use the
    last hosts as backends in order, the host before them as the lb, and the rest as clients.

    Args:
        graph (networkx.Graph): the topology.
        backends (tuple[experiments.spec.Backend]): the spec's backends.
    Returns:
        Roles: the assignment.
    Raises:
        PlanError: not enough hosts.
    """
    names = [b.name for b in backends]
    role_backends = graphs.hosts(graph, "backend")
    if role_backends:
        if len(role_backends) != len(names):
            raise PlanError(f"{len(names)} backends but {len(role_backends)} backend hosts")
        lbs = graphs.hosts(graph, "lb")
        return Roles(clients=tuple(graphs.hosts(graph, "client")),
                     lb=lbs[0] if lbs else None, backends=dict(zip(names, role_backends)))
    hosts = graphs.hosts(graph)
    if len(hosts) < len(names) + 2:
        raise PlanError(f"{len(hosts)} hosts cannot hold {len(names)} backends, an lb host "
                        f"and a client")
    backend_hosts = hosts[-len(names):]
    return Roles(clients=tuple(hosts[:-len(names) - 1]), lb=hosts[-len(names) - 1],
                 backends=dict(zip(names, backend_hosts)))


def results_dir_name(name, utc):
    """Return ``<name>-<YYYYmmddTHHMMSS>`` (no ``:`` in names) for a UTC datetime."""
    stamp = utc.strftime("%Y%m%dT%H%M%S")
    assert _TS_RE.match(stamp)
    return f"{name}-{stamp}"


def run_name(config, rep):
    """Return the raw folder name of a configuration's repetition (1-based)."""
    return f"{config}-r{rep}"


def split_load(total, clients):
    """Split a total (users or req/s) over clients: ``[(client, share)]`` with share > 0.

    Integers are split as evenly as possible (clients beyond the total get nothing and are left
    out); floats are split equally.
    """
    if isinstance(total, int):
        base, extra = divmod(total, len(clients))
        shares = [base + (1 if i < extra else 0) for i in range(len(clients))]
    else:
        shares = [total / len(clients)] * len(clients)
    return [(c, s) for c, s in zip(clients, shares) if s > 0]


def backend_args(backend, record, seed):
    """Return the ``lblab backend`` arguments (after the interpreter) for a spec backend.

    Processes start from their own module's ``__main__`` (``python -m lb_apps.backend.server``), which
    runs the command exactly as the ``lblab backend`` entry point does.
    """
    args = ["-m", "lb_apps.backend.server", "--name", backend.name, "--port", str(BACKEND_PORT),
            "--record", record, "--response-size", str(backend.response_size),
            "--service-dist", backend.service.dist,
            "--service-mean-ms", repr(backend.service.mean_ms),
            "--seed", str(seed)]
    if backend.service.dist == "lognormal":
        args += ["--service-sigma", repr(backend.service.sigma)]
    if backend.capacity is not None:
        args += ["--capacity", str(backend.capacity)]
    if backend.error_rate:
        args += ["--error-rate", repr(backend.error_rate)]
    if backend.cache_control is not None:
        args += ["--cache-control", backend.cache_control]
    return args


def loadgen_configs(spec, roles, url, seed, record_for):
    """Return ``{client: loadgen settings dict}`` for an HTTP workload.

    ``users`` and ``rate`` in the spec are totals over all clients, split evenly.

    Args:
        spec (experiments.spec.Spec): the spec of this sweep point.
        roles (Roles): host roles.
        url (str): the service URL the clients load.
        seed (int): the run's seed (each client gets seed + its index).
        record_for (callable): client -> records file path.
    """
    w = spec.workload
    total = w.rate if w.mode == "open" else w.users
    out = {}
    shares = split_load(total, list(roles.clients))
    users = dict(split_load(w.users, [c for c, _ in shares])) if w.mode == "open" else {}
    for i, (client, share) in enumerate(shares):
        cfg = {
            "url": url, "mode": w.mode, "duration_s": spec.duration_s,
            "warmup_s": spec.warmup_s, "keepalive": w.keepalive, "timeout_s": w.timeout_s,
            "seed": seed + i,
            "session": w.session, "source_ports": w.source_ports,
            "record": record_for(client), "name": client,
            "mix": [{"path": k.path, "method": k.method, "weight": k.weight,
                     "headers": dict(k.headers), "cookies": dict(k.cookies),
                     "body_size": k.body_size} for k in w.mix],
        }
        if w.mode == "open":
            cfg.update(rate=float(share), arrival=w.arrival)
            # the pool bounds concurrent connections: the spec's users, split like the rate
            cfg["pool_size"] = max(1, users.get(client, 1))
        else:
            cfg.update(users=int(share), think_ms=w.think_ms)
        out[client] = cfg
    return out


def controller_config(spec, balancer, graph, roles, ofp_port, api_port):
    """Return the ``controllers.launcher`` config dict of an L4 balancer.

    Args:
        spec (experiments.spec.Spec): the spec (backends and their weights).
        balancer (experiments.spec.Balancer): an ``l4`` balancer.
        graph (networkx.Graph): the topology, passed as node-link data.
        roles (Roles): host roles.
        ofp_port, api_port (int): controller ports on 127.0.0.1.

    An HTTP workload gets service port 80 with TCP health probes; an iperf3 workload port 5201
    with ARP probes (a TCP probe would count as a failed test at the iperf3 server).
    """
    import networkx as nx
    iperf = spec.workload.type == "iperf3"
    return {
        "controller": {"ofp_host": "127.0.0.1", "ofp_port": ofp_port, "api_host": "127.0.0.1",
                       "api_port": api_port, "seed": spec.seed, "stats_interval": 1.0},
        "topology": nx.node_link_data(graph, edges="edges"),
        "services": {SERVICE_NAME: {
            "vip": VIP, "protocol": "tcp", "port": IPERF_PORT if iperf else SERVICE_PORT,
            "mode": balancer.mode,
            # a balancer from a file by its absolute path: the config is read from elsewhere
            "algorithm": resolve_balancer_file(balancer.algorithm, base_dir(spec.source)),
            "backends": {roles.backends[b.name]: {"weight": max(1, int(round(b.weight)))}
                         for b in spec.backends},
            "health": {"kind": "arp" if iperf else "tcp", "interval": 0.5, "rise": 2,
                       "fall": 2},
            **({"conntrack": True} if balancer.conntrack else {}),
            **({"in_flight": balancer.in_flight} if balancer.in_flight else {}),
        }},
    }


def proxy_config(spec, balancer, graph, roles, backends=None):
    """Return the L7 proxy config dict (``lb_apps.l7config`` format) of an ``l7`` balancer.

    Args:
        spec (experiments.spec.Spec): the spec.
        balancer (experiments.spec.Balancer): an ``l7`` balancer.
        graph (networkx.Graph): the topology (backend addresses).
        roles (Roles): host roles.
        backends (dict|None): name -> weight overrides (0 removes the backend: a drain).
    """
    weights = {b.name: b.weight for b in spec.backends}
    if backends:
        weights.update(backends)
    addresses = {name: (graph.nodes[roles.backends[name]]["ip"], w)
                 for name, w in weights.items() if w > 0}
    base = base_dir(spec.source)  # balancer files by absolute path: read from elsewhere
    data = spec_mod.resolve_l7(absolute_balancer_files(balancer.l7 or {}, base), addresses,
                               resolve_balancer_file(balancer.algorithm, base), BACKEND_PORT)
    if backends:
        data["backends"] = [b for b in data["backends"] if b["name"] in addresses]
        for group in (data.get("groups") or {}).values():
            group["backends"] = [b for b in group["backends"] if b["name"] in addresses]
    data["listen"] = {"host": "0.0.0.0", "port": PROXY_PORT}
    data.setdefault("stats", {"host": "127.0.0.1", "port": PROXY_STATS_PORT})
    return data


def iperf3_client_args(spec, client_index):
    """Return the iperf3 client command for one client (JSON on stdout).

    ``-O`` leaves the warm-up seconds out of the reported rates; ``-P`` opens the spec's flows
    as parallel streams of one test.
    """
    w = spec.workload
    args = ["iperf3", "-c", VIP, "-p", str(IPERF_PORT), "-P", str(w.flows),
            "-t", f"{spec.warmup_s + spec.duration_s:g}", "-O", f"{spec.warmup_s:g}", "-J",
            "--connect-timeout", "3000"]
    if w.bitrate:
        args += ["-b", w.bitrate]
    return args


def iperf3_servers_by_client(server_logs, client_ips):
    """Return ``{client: backend}`` from iperf3 server JSON logs (one object per test).

    Args:
        server_logs (dict): backend name -> text of its ``iperf3 -s -J --logfile`` file.
        client_ips (dict): client ip -> client host name.
    """
    import json
    out = {}
    decoder = json.JSONDecoder()
    for backend, text in server_logs.items():
        i = 0
        while True:
            while i < len(text) and text[i].isspace():
                i += 1
            if i >= len(text):
                break
            try:
                obj, i = decoder.raw_decode(text, i)
            except ValueError:
                break
            for conn in (obj.get("start") or {}).get("connected") or []:
                client = client_ips.get(conn.get("remote_host"))
                if client is not None:
                    out[client] = backend
    return out


def service_url(balancer, graph, roles):
    """Return the URL clients load: the VIP for L4, the lb host for L7."""
    if balancer.layer == "l4":
        return f"http://{VIP}:{SERVICE_PORT}/"
    scheme = "https" if (balancer.l7 or {}).get("tls") else "http"   # the proxy terminates TLS
    return f"{scheme}://{graph.nodes[roles.lb]['ip']}:{PROXY_PORT}/"


def client_windows(records_by_client, duration):
    """Return each client's measurement window ``[t0, t0 + duration)`` from its records.

    The load generator marks warm-up records; its window starts at the end of warm-up, which
    the first non-warm-up request's scheduled time marks (within one inter-request gap).

    Args:
        records_by_client (dict): client -> list of records.
        duration (float): the spec's duration_s.
    Returns:
        dict: client -> [t0, t1] (clients without measured records are left out).
    """
    out = {}
    for client, records in records_by_client.items():
        starts = [r["scheduled"] for r in records if not r.get("warmup")]
        if starts:
            t0 = min(starts)
            out[client] = [t0, t0 + duration]
    return out


def union_window(windows):
    """Return ``[min t0, max t1]`` of per-client windows, or None."""
    if not windows:
        return None
    return [min(w[0] for w in windows.values()), max(w[1] for w in windows.values())]


def vip_is_free(graph):
    """True when no host of the graph uses the service VIP."""
    return all(d.get("ip") != VIP for _, d in graph.nodes(data=True))


assert ipaddress.IPv4Address(VIP) in ipaddress.IPv4Network("10.0.0.0/8")


# -- is the balancer's pool complete? (the runner waits for it before the load starts) -----------

def controller_pool_expected(config):
    """Return ``({backend host: weight}, switches)`` that an L4 controller config promises:
    the :data:`SERVICE_NAME` pool with its weights, and every switch of its topology."""
    pool = {host: b["weight"] for host, b in config["services"][SERVICE_NAME]["backends"].items()}
    switches = sorted(n["id"] for n in config["topology"]["nodes"] if n.get("kind") == "switch")
    return pool, switches


def controller_pool_waiting(services, stats, pool, switches, names=None):
    """Return what the L4 controller still lacks before the load may start; ``[]``: ready.

    Ready means every switch is connected (its flows and the service's group are installed)
    and every configured backend is in the service's pool, health ``up`` and at its configured
    weight. Health starts ``up`` but the probes that run while the backends start (a closed
    port answers RST) take them ``down`` until ``rise`` probes pass: load started then sees a
    partial pool.

    Args:
        services (dict): the controller's ``GET /services``.
        stats (dict): its ``GET /stats``.
        pool (dict): backend host -> configured weight (:func:`controller_pool_expected`).
        switches (list[str]): every switch of the topology.
        names (dict|None): backend host -> the spec's name for it, for the messages.
    Returns:
        list[str]: one line per thing still missing, in a stable order.
    """
    names = names or {}
    waiting = []
    connected = (stats or {}).get("switches") or {}
    off = [s for s in switches if not (connected.get(s) or {}).get("connected")]
    if off:
        waiting.append(f"switch{'es' if len(off) > 1 else ''} not connected: {', '.join(off)}")
    service = (services or {}).get(SERVICE_NAME)
    if service is None:
        return waiting + [f"no service {SERVICE_NAME!r} in the controller's pools"]
    have = service.get("backends") or {}
    for host, weight in pool.items():
        label = f"{names[host]} ({host})" if host in names else host
        backend = have.get(host)
        if backend is None:
            waiting.append(f"{label} not in the pool")
        elif backend.get("state") != "up":
            waiting.append(f"{label} health {backend.get('state')}")
        elif backend.get("weight") != weight:
            waiting.append(f"{label} weight {backend.get('weight')}, configured {weight}")
    return waiting


def proxy_stats_ports(config):
    """Return the stats port of each worker of a builtin-proxy config (``[]``: none to read:
    no stats endpoint, or one on a port picked at start)."""
    stats = config.get("stats")
    if not stats or not stats.get("port"):
        return []
    return [stats["port"] + i for i in range(config.get("workers", 1))]


def proxy_pool_waiting(worker_stats, config):
    """Return what the builtin L7 proxy still lacks before the load may start; ``[]``: ready.

    Ready means every worker answers its stats and serves every backend of the config (each
    worker keeps its own health state).

    Args:
        worker_stats (list[dict|None]): each worker's stats document, None where it did not
            answer (yet).
        config (dict): the proxy's config (:func:`proxy_config`).
    Returns:
        list[str]: one line per thing still missing.
    """
    expected = [b["name"] for b in config.get("backends") or []]
    waiting = []
    for i, doc in enumerate(worker_stats):
        if doc is None:
            waiting.append(f"worker {i}: no stats yet")
            continue
        have = doc.get("backends") or {}
        for name in expected:
            health = (have.get(name) or {}).get("health")
            if name not in have:
                waiting.append(f"worker {i}: {name} not in the pool")
            elif not (health or {}).get("serving"):
                waiting.append(f"worker {i}: {name} not serving (active "
                               f"{(health or {}).get('active')}, passive "
                               f"{(health or {}).get('passive')})")
    return waiting


# -- resuming a batch (lblab run --resume) -------------------------------------------------------

ATTEMPTS_DIR = "raw-attempts"     # beside raw/: failed attempts moved aside, never deleted


@dataclass(frozen=True)
class ResumePlan:
    """What ``lblab run --resume`` does with a batch's runs.

    ``keep``: runs whose ``meta.json`` says ok; ``redo``: every other planned run, in the
    planned order (missing, failed, interrupted, or a folder without ``meta.json``);
    ``move``: the runs among ``redo`` that have a folder to move aside first; ``unknown``:
    folders of runs the batch does not plan.
    """
    keep: tuple
    redo: tuple
    move: tuple
    unknown: tuple


def resume_plan(planned, found):
    """Plan a resume from what the results folder holds (pure).

    Args:
        planned (list[str]): run ids in the order the batch runs them (``manifest.json``'s
            ``order.runs``).
        found (dict): run id -> the ``status`` in its ``meta.json`` (``"ok"``, ``"failed"``)
            or None when its folder has no readable ``meta.json`` (a run killed hard).
    Returns:
        ResumePlan: the plan.
    """
    keep = tuple(r for r in planned if found.get(r) == "ok")
    redo = tuple(r for r in planned if found.get(r) != "ok")
    move = tuple(r for r in redo if r in found)
    unknown = tuple(sorted(set(found) - set(planned)))
    return ResumePlan(keep, redo, move, unknown)


def attempt_name(run, existing):
    """Return the folder name for a failed attempt of ``run`` moved aside: ``<run>-a<N>``,
    ``N`` one past the attempts of ``run`` already in ``existing`` (names in raw-attempts/)."""
    n = 1
    while f"{run}-a{n}" in existing:
        n += 1
    return f"{run}-a{n}"
