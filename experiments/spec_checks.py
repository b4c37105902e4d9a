"""Rules of a spec that relate several fields, checked after the models (experiments.spec_models).

Each check reads the parts of the spec that validated (a part that did not is ``BAD`` and its
checks are skipped, so one mistake is said once) and records problems on a
:class:`experiments.spec_errors.Locator`, in the same ``file:line: key.path: message`` format
as the models' errors.
"""
import copy
import re

from controllers.config import (MAX_WEIGHT, MODE_ALGORITHMS, REACTIVE_MODES,
                                SWITCH_IN_FLIGHT_ALGORITHMS)
from experiments.overrides import parse_set_path
from experiments.spec_errors import shown
from lblab_core.config import did_you_mean
from experiments.spec_models import (BACKEND_FAULT_MODES, BACKEND_FAULTS, IPERF_ALGORITHMS,
                                     IPERF_MODES, LINK_FAULTS, NETEM_FAULTS)
from lb_apps import custom_balancer as cb
from lb_apps.engines.render import check_support
from lb_apps.l7config import L7ConfigError, parse_l7_config
from topologies import graphs

BAD = object()
_PARAM_RE = re.compile(r"parameter '([A-Za-z_]+)'")
# Addresses for checking an ``l7`` section: the runner resolves the real ones per run.
_PLACEHOLDER_NET = "10.255.0."


class Parts:
    """The parts of a spec that validated on their own, in file order.

    Args:
        fields (dict): top-level key -> validated value (or default), or ``BAD``.
        backends, balancers, faults (tuple): each item validated, or ``BAD``.
    """

    def __init__(self, fields, backends=(), balancers=(), faults=()):
        self.fields = fields
        self.backends = backends
        self.balancers = balancers
        self.faults = faults

    def get(self, name):
        """Return the validated value of top-level key ``name`` (``BAD`` when it failed)."""
        return self.fields.get(name, BAD)


def check(parts, loc):
    """Run every cross-field rule; problems go to ``loc``.

    Args:
        parts (Parts): what validated.
        loc (experiments.spec_errors.Locator): where problems are recorded.
    """
    graph = _topology(parts.get("topology"), loc)
    backends = parts.get("backends")
    _unique(parts.backends, "backends", "backend", loc)
    _unique(parts.balancers, "balancers", "balancer", loc)
    for i, backend in enumerate(parts.backends):
        if backend is not BAD and "sigma" in backend.service.model_fields_set \
                and backend.service.dist != "lognormal":
            loc.fail(("backends", i, "service", "sigma"), f"sigma only applies to dist: "
                                                          f"lognormal, not "
                                                          f"{backend.service.dist!r}")
    for i, balancer in enumerate(parts.balancers):
        if balancer is not BAD:
            _balancer(("balancers", i), balancer, backends, loc)
    workload = parts.get("workload")
    if workload is not BAD and workload.type == "http":
        if workload.mode == "open" and workload.rate is None:
            loc.fail(("workload", "rate"), "an open-loop workload needs rate (requests/s, all "
                                           "clients together)")
        elif workload.mode == "closed" and workload.rate is not None:
            loc.fail(("workload", "rate"), "rate applies to mode: open only (closed loop sets "
                                           "users and think_ms)")
    _faults(parts, backends, graph, loc)
    if workload is not BAD and workload.type == "iperf3":
        _iperf3(parts, workload, loc)
    _roles_fit(graph, backends, parts.get("balancers"), loc)


def _unique(items, key, what, loc):
    seen = set()
    for i, item in enumerate(items):
        if item is BAD:
            continue
        if item.name in seen:
            loc.fail((key, i, "name"), f"duplicate {what} name {item.name!r}")
        seen.add(item.name)


def _topology(topology, loc):
    """Check the generator's parameters by building the graph (bounded before it is built)."""
    if topology is BAD:
        return None
    known = graphs.generator_params(topology.name)
    for key in topology.params:
        if key not in known:
            loc.fail(("topology", "params", key),
                     f"unknown parameter {shown(key)} of {topology.name}; expected one of "
                     f"{', '.join(known)}{did_you_mean(key, known)}")
            return None
    try:
        return graphs.build(topology.name, topology.params)
    except graphs.TopologyError as exc:
        param = getattr(exc, "param", None)
        if param is None:
            match = _PARAM_RE.search(str(exc))
            param = match.group(1) if match else None
        loc.fail(("topology", "params") + ((param,) if param else ()), str(exc))
        return None


def _balancer(path, balancer, backends, loc):
    if balancer.layer == "l4":
        if "conntrack" in balancer.model_fields_set and balancer.mode != "group":
            loc.fail(path + ("conntrack",), "applies to mode: group only (the other modes "
                                            "choose their data path by mode and algorithm)")
        if balancer.in_flight is not None and (
                balancer.mode != "l4" or balancer.algorithm not in SWITCH_IN_FLIGHT_ALGORITHMS):
            algorithm = (cb.describe(balancer.algorithm)
                         if cb.is_file_algorithm(balancer.algorithm) else balancer.algorithm)
            loc.fail(path + ("in_flight",), f"{balancer.in_flight!r}: applies to mode l4 with "
                                            f"{' or '.join(SWITCH_IN_FLIGHT_ALGORITHMS)} only "
                                            f"(got mode {balancer.mode}, algorithm {algorithm})")
        choices = MODE_ALGORITHMS[balancer.mode]
        if cb.is_file_algorithm(balancer.algorithm):
            _file_balancer(path, balancer, loc)
        elif balancer.algorithm not in choices:
            loc.fail(path + ("algorithm",), f"mode {balancer.mode} cannot balance by "
                                            f"{balancer.algorithm!r}; expected one of "
                                            f"{', '.join(choices)}")
    elif backends is not BAD:
        _l7(path, balancer, backends, loc)


def _file_balancer(path, balancer, loc):
    """An L4 balancer from a file: a mode that asks it per flow, and a file that works."""
    if balancer.mode not in REACTIVE_MODES:
        shown = cb.describe(balancer.algorithm)
        loc.fail(path + ("algorithm",), f"a balancer from a file ({shown}) needs mode l2, l3 "
                                        f"or l4 (asked per connection or client); mode "
                                        f"{balancer.mode} balances in the switch without "
                                        "asking it")
        return
    try:
        cb.check_file(cb.resolve(balancer.algorithm, cb.base_dir(loc.source)))
    except cb.BalancerFileError as exc:
        loc.fail(path + ("algorithm",), str(exc))


def _l7(path, balancer, backends, loc):
    """The ``l7`` section is a proxy config; HAProxy and nginx are checked for what they lack."""
    addresses = {b.name: (f"{_PLACEHOLDER_NET}{i + 1}", b.weight)
                 for i, b in enumerate(backends)}
    try:
        data = resolve_l7(balancer.l7, addresses, balancer.algorithm)
    except BackendNameError as exc:
        loc.fail(path + ("l7",) + exc.path, exc.problem)
        return
    try:
        config = parse_l7_config(data, loc.source)
    except L7ConfigError as exc:
        for sub, problem in getattr(exc, "issues", None) or [(exc.path, exc.problem)]:
            sub = _key_path(sub)
            # the balancer's own algorithm (not the l7 section's) is reported where it is
            at = (path + sub if sub == ("algorithm",) and "algorithm" not in balancer.l7
                  else path + ("l7",) + sub)
            loc.fail(at, problem or str(exc))
        return
    if balancer.engine != "builtin":
        problems = check_support(balancer.engine, config)
        if problems:
            loc.fail(path + ("engine",), f"{balancer.engine} cannot express "
                                         f"{'; '.join(problems)}; use engine builtin")


def _key_path(sub):
    if isinstance(sub, tuple):
        return sub
    try:
        return parse_set_path(sub) if sub else ()
    except ValueError:
        return ()


class BackendNameError(ValueError):
    """An ``l7`` section names a backend the spec does not have.

    Args:
        path (tuple): key path inside the ``l7`` section.
        problem (str): the message.
    """

    def __init__(self, path, problem):
        self.path = path
        self.problem = problem
        super().__init__(f"{'.'.join(map(str, path))}: {problem}" if path else problem)


def resolve_l7(l7, addresses, algorithm=None, port=80):
    """Return the L7 proxy config with backends filled in from the spec's backends.

    In a spec, the ``l7`` section names backends rather than addressing them: the top-level
    ``backends`` defaults to every spec backend, and a group's ``backends`` is a list of backend
    names. This turns those into the ``{name, address, port, weight}`` entries the proxy takes;
    anything else is left for ``lb_apps.l7config`` to judge.

    Args:
        l7 (dict): the balancer's ``l7`` section.
        addresses (dict): backend name -> (address, weight), in spec order.
        algorithm (str|None): the balancer's algorithm (used when ``l7`` sets none).
        port (int): the backends' port.
    Returns:
        dict: a config for ``lb_apps.l7config.parse_l7_config``.
    Raises:
        BackendNameError: (a ValueError) a name that is not a spec backend; the message names
            the group and the choices.
    """
    def entries(items, path):
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, str):
                out.append(item)
                continue
            if item not in addresses:
                raise BackendNameError(path, f"unknown backend {shown(item)}; expected one of "
                                             f"{', '.join(addresses)}"
                                             f"{did_you_mean(item, addresses)}")
            address, weight = addresses[item]
            out.append({"name": item, "address": address, "port": port,
                        "weight": max(1, int(round(weight)))})
        return out

    data = copy.deepcopy(l7)
    if algorithm is not None:
        data.setdefault("algorithm", algorithm)
    if "backends" not in data:
        data["backends"] = entries(list(addresses), ("backends",))
    elif isinstance(data["backends"], list):
        data["backends"] = entries(data["backends"], ("backends",))
    groups = data.get("groups")
    if isinstance(groups, dict):
        for name, group in groups.items():
            if isinstance(group, dict) and isinstance(group.get("backends"), list):
                group["backends"] = entries(group["backends"], ("groups", name, "backends"))
    return data


def _faults(parts, backends, graph, loc):
    duration = parts.get("duration_s")
    names = [b.name for b in backends] if backends is not BAD else None
    reported = set()    # faults with a problem already: the rules below leave them out
    for i, fault in enumerate(parts.faults):
        if fault is BAD:
            continue
        path = ("faults", i)
        problems = len(loc.problems)
        if duration is not BAD and fault.at_s >= duration:
            loc.fail(path + ("at_s",), f"{fault.at_s:g} is not within the measurement "
                                       f"(duration_s: {duration:g}); expected 0 <= at_s < "
                                       f"{duration:g}")
        if fault.action in BACKEND_FAULTS:
            if fault.target is None:
                loc.fail(path + ("target",), f"is required for {fault.action}: a backend name"
                                             + (f" ({', '.join(names)})" if names else ""))
            elif names is not None and fault.target not in names:
                loc.fail(path + ("target",), f"{shown(fault.target)}: expected one of "
                                             f"{', '.join(names)}"
                                             f"{did_you_mean(fault.target, names)}")
        elif fault.action in LINK_FAULTS:
            _link_target(path + ("target",), fault.target, graph, loc)
        elif fault.target is not None:
            loc.fail(path + ("target",), f"{fault.action} takes no target")
        if fault.action == "set_weight" and fault.value is None:
            loc.fail(path + ("value",), f"is required for set_weight: the new weight, a number "
                                        f"in 0..{MAX_WEIGHT}")
        elif fault.action in NETEM_FAULTS:
            unit, bound = NETEM_FAULTS[fault.action]
            if fault.value is None:
                loc.fail(path + ("value",), f"is required for {fault.action}: a number in "
                                            f"0..{bound:g} ({unit})")
            elif fault.value > bound:
                loc.fail(path + ("value",), f"{fault.value:g}: expected a number <= {bound:g} "
                                            f"({unit}) for {fault.action}")
        elif fault.action == "backend_fault" and fault.value is not None \
                and fault.mode != "slow":
            loc.fail(path + ("value",), f"value applies to backend_fault with mode: slow only "
                                        f"(the delay in ms), not mode: {fault.mode}")
        elif fault.action not in ("set_weight", "backend_fault", *NETEM_FAULTS) \
                and fault.value is not None:
            loc.fail(path + ("value",), f"value applies to set_weight, backend_fault, "
                                        f"link_delay and link_loss, not {fault.action}")
        if fault.action == "backend_fault" and fault.mode is None:
            loc.fail(path + ("mode",), f"is required for backend_fault: one of "
                                       f"{', '.join(BACKEND_FAULT_MODES)}")
        elif fault.action != "backend_fault" and fault.mode is not None:
            loc.fail(path + ("mode",), f"mode applies to backend_fault only, not "
                                       f"{fault.action}")
        if len(loc.problems) > problems:
            reported.add(i)
    if parts.faults and parts.get("workload") is not BAD \
            and parts.get("workload").type == "iperf3":
        loc.fail(("faults",), "faults are only supported with an http workload")
        return
    balancers = [b for b in parts.balancers if b is not BAD]
    faults = tuple(BAD if i in reported else f for i, f in enumerate(parts.faults))
    for i, fault in enumerate(faults):
        if fault is BAD or fault.optional:
            continue
        cannot = [(b, why) for b in balancers if (why := balancer_cannot(b, fault.action))]
        if cannot:
            loc.fail(("faults", i, "action"), "; ".join(
                f"balancer {b.name!r} ({_what(b)}) cannot {fault.action}: {why}"
                for b, why in cannot) + "; mark the fault optional: true to skip it there")
    _fault_order(faults, balancers, loc)


# Why a balancer cannot do a fault action (None: it can). Faults apply to every balancer of a
# spec: a fault one of them cannot do fails the spec unless it is optional.
_CONTROLLER_ACTIONS = ("drain_backend", "set_weight", "stop_controller")


def balancer_cannot(balancer, action):
    """Return why ``balancer`` cannot do fault ``action``, or None when it can.

    ``stop_controller`` needs an L4 balancer (the controller); ``drain_backend`` and
    ``set_weight`` need the controller (L4) or the builtin proxy (a config reload): lblab does
    not change HAProxy's or nginx's pool at run time.

    Args:
        balancer (experiments.spec_models.L4Balancer|L7Balancer): the balancer.
        action (str): one of ``experiments.spec_models.FAULT_ACTIONS``.
    Returns:
        str|None: the reason.
    """
    if action == "stop_controller" and balancer.layer != "l4":
        return "an L7 balancer has no controller"
    if action in ("drain_backend", "set_weight") and balancer.layer == "l7" \
            and balancer.engine != "builtin":
        return (f"lblab changes the pool at run time only through the controller (L4) or a "
                f"reload of the builtin proxy, not {balancer.engine}'s")
    return None


def _what(balancer):
    return f"layer l4, mode {balancer.mode}" if balancer.layer == "l4" else \
        f"engine {balancer.engine}"


def _fault_order(faults, balancers, loc):
    """Each fault must find what it changes in the state the faults before it left: kill a
    running backend, restore a killed one, switch the fault mode of a running backend that
    still accepts connections (mode refuse closes its listener, /admin/fault too), take down a
    link that is up (and up one that is down), stop the controller once and change its pool
    only while it runs. Faults run in time order (file order for equal times), as the runner
    applies them. An optional fault that does not fit is not reported (it will be skipped with
    the reason) and changes nothing."""
    killed, refused, down, stopped = {}, {}, {}, None
    l4 = [b.name for b in balancers if b.layer == "l4"]
    checked = [(i, f) for i, f in enumerate(faults) if f is not BAD and (
        f.action == "stop_controller" or f.target is not None)]
    for i, fault in sorted(checked, key=lambda item: item[1].at_s):
        action, target, at = fault.action, fault.target, fault.at_s
        link = frozenset(target.split("-")) if action in LINK_FAULTS else None
        problem = None
        if action == "backend_fault" and target in killed:
            problem = (f"{target} was killed at {faults[killed[target]].at_s:g} s "
                       f"(faults[{killed[target]}]) and not restored: backend_fault at {at:g} s "
                       f"needs it running")
        elif action == "backend_fault" and target in refused:
            problem = (f"{target} refuses connections since {faults[refused[target]].at_s:g} s "
                       f"(faults[{refused[target]}], mode refuse), so backend_fault at {at:g} s "
                       f"cannot reach it; kill_backend and restore_backend it instead")
        elif action == "kill_backend" and target in killed:
            problem = (f"{target} was killed at {faults[killed[target]].at_s:g} s "
                       f"(faults[{killed[target]}]) and not restored; restore_backend it before "
                       f"killing it again at {at:g} s")
        elif action == "restore_backend" and target not in killed:
            problem = (f"{target} is running at {at:g} s: restore_backend needs a kill_backend "
                       f"of it before")
        elif action == "link_down" and link in down:
            problem = (f"link {target} went down at {faults[down[link]].at_s:g} s "
                       f"(faults[{down[link]}]) and is still down at {at:g} s")
        elif action == "link_up" and link not in down:
            problem = (f"link {target} is up at {at:g} s: link_up needs a link_down of it "
                       f"before")
        elif action in _CONTROLLER_ACTIONS and l4 and stopped is not None:
            problem = (f"the controller of {', '.join(map(repr, l4))} is stopped at "
                       f"{faults[stopped].at_s:g} s (faults[{stopped}]); {action} at {at:g} s "
                       f"cannot reach it")
        if problem is not None:
            if not fault.optional:
                loc.fail(("faults", i, "action"), problem)
            continue
        if action == "kill_backend":
            killed[target] = i
            refused.pop(target, None)
        elif action == "restore_backend":
            del killed[target]
        elif action == "backend_fault" and fault.mode == "refuse":
            refused[target] = i
        elif action == "link_down":
            down[link] = i
        elif action == "link_up":
            del down[link]
        elif action == "stop_controller" and l4:
            stopped = i


def _link_target(path, target, graph, loc):
    if not isinstance(target, str) or target.count("-") != 1:
        loc.fail(path, f"expected a link as 'a-b' (e.g. 's1-h6'), got {shown(target)}")
        return
    a, b = target.split("-")
    if graph is not None and not graph.has_edge(a, b):
        links = sorted(f"{x}-{y}" for x, y in graph.edges)
        loc.fail(path, f"no link {shown(target)} in the topology; links are "
                       f"{', '.join(links[:12])}{' …' if len(links) > 12 else ''}"
                       f"{did_you_mean(target, links)}")


def _iperf3(parts, workload, loc):
    if workload.protocol == "udp":
        loc.fail(("workload", "protocol"), "udp is not supported yet: an iperf3 UDP test needs "
                                           "a TCP control connection to the same VIP and port, "
                                           "and the controller balances one protocol per VIP; "
                                           "use tcp")
    for i, b in enumerate(parts.balancers):
        if b is BAD:
            continue
        if b.layer == "l7":
            loc.fail(("balancers", i, "layer"), "an iperf3 workload needs layer: l4 balancers "
                                                "(the L7 proxy speaks HTTP)")
        elif not (b.mode in IPERF_MODES or b.algorithm in IPERF_ALGORITHMS):
            loc.fail(("balancers", i), f"{b.mode}/{b.algorithm} balances each connection on "
                                       f"its own, but an iperf3 test's control and data "
                                       f"connections must reach the same server; use mode "
                                       f"{' or '.join(IPERF_MODES)}, or algorithm "
                                       f"{' or '.join(IPERF_ALGORITHMS)}")


def _roles_fit(graph, backends, balancers, loc):
    """The topology must have hosts for the clients, the backends and (for L7) the lb."""
    if graph is None or backends is BAD:
        return
    needs_lb = balancers is not BAD and any(b.layer == "l7" for b in balancers)
    role_backends = graphs.hosts(graph, "backend")
    if role_backends and len(role_backends) != len(backends):
        loc.fail(("backends",), f"{len(backends)} backends but the topology has "
                                f"{len(role_backends)} backend hosts "
                                f"({', '.join(role_backends)}); make them equal")
    elif role_backends and needs_lb and not graphs.hosts(graph, "lb"):
        loc.fail(("topology", "name"), f"{graph.graph['topology']} has no lb host for the "
                                       f"layer: l7 balancers; use lb_lab or a topology "
                                       f"without host roles (single, tree, …)")
    elif not role_backends:
        n_hosts = len(graphs.hosts(graph))
        need = len(backends) + 1 + (1 if needs_lb else 0)
        if n_hosts < need:
            loc.fail(("topology", "params"), f"{n_hosts} hosts cannot hold {len(backends)} "
                                             f"backends, {'an lb host and ' if needs_lb else ''}"
                                             f"at least one client (need {need})")
