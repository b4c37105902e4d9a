"""OSKenApp shim between os-ken and the pure balancer core (controllers/decisions.py).

Handlers only decode the event, call the core with ``now`` under one lock, encode the returned
decisions (controllers/ofmsgs.py) and send them. Every handler catches its own exceptions, so a
malformed packet or a bug in one decision never takes the app or a switch connection down.
"""
import logging
import threading
import time

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER,
                                       set_ev_cls)
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3

from controllers import api, datapath, ofmsgs, pipeline, steering
from controllers.decisions import Core
from controllers.pipeline import PacketOut
from lb_apps.balancing import make_balancer
from topologies import graphs

LOG = logging.getLogger("lblab.controller")
TICK_SEC = 0.05
# The launcher puts the parsed config here before AppManager instantiates the app.
PENDING_CONFIG = None


def configure(config):
    """Hand the parsed :class:`controllers.config.Config` to the app about to be started."""
    global PENDING_CONFIG
    PENDING_CONFIG = config


class LoadBalancerApp(app_manager.OSKenApp):
    """L2/L3/L4 balancing of virtual IPs over shortest-path forwarding (OpenFlow 1.3)."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if PENDING_CONFIG is None:
            raise RuntimeError("controllers.app: no config; start it with controllers.launcher")
        self.config = PENDING_CONFIG
        self.core = Core(self.config, make_balancer)
        self.lock = threading.RLock()
        self.datapaths = {}
        self.names = {int(d["dpid"], 16): n for n, d in self.config.graph.nodes(data=True)
                      if d.get("kind") == "switch"}
        self.pending_stats = {}
        self.relearn_xids = set()  # flow stats requests whose reply re-learns connections
        self.errors = 0
        self.api_server = None
        self.started = time.time()

    def start(self):
        """Start the os-ken event loop, the health/stats threads and the JSON API."""
        thread = super().start()
        datapath.LabDatapath.packet_in_sink = self.handle_packet_in
        datapath.LabDatapath.counter_classes = frozenset((pipeline.COOKIE_OPENED,
                                                          pipeline.COOKIE_CLOSED))
        datapath.LabDatapath.counter_stats_sink = self.handle_counter_stats
        self.threads.append(hub.spawn(self._tick_loop))
        if self.config.controller.stats_interval > 0:
            self.threads.append(hub.spawn(self._stats_loop))
        port = self.config.controller.api_port
        if port:
            self.api_server = api.serve(self.config.controller.api_host, port, self)
        LOG.info("lblab controller: %d services, %d switches expected, OpenFlow %s:%d, API %s",
                 len(self.config.services), len(self.names), self.config.controller.ofp_host,
                 self.config.controller.ofp_port, port or "off")
        return thread

    # -- sending ------------------------------------------------------------------------

    def send(self, decisions):
        """Encode and send decisions to their switches (those not connected are skipped)."""
        for decision in decisions:
            dp = self.datapaths.get(decision.switch)
            if dp is None:
                continue
            if isinstance(decision, PacketOut):  # the per-connection hot path: raw bytes
                dp.send(ofmsgs.packet_out_bytes(decision))
                continue
            msg = ofmsgs.encode(decision)
            msg.datapath = dp
            dp.send_msg(msg)

    def _send_raw(self, dp, msg):
        msg.datapath = dp
        dp.send_msg(msg)

    def _guard(self, what, func, *args):
        try:
            with self.lock:
                decisions = func(*args)
                self.send(decisions or [])
        except Exception:  # noqa: BLE001 -- a handler must never kill the app
            self.errors += 1
            LOG.exception("lblab controller: %s failed; carrying on", what)

    # -- API entry points (called from the API thread) ------------------------------------

    def services(self):
        """Return the services view."""
        with self.lock:
            return self.core.services_view()

    def stats(self):
        """Return the stats view with controller-level counters."""
        with self.lock:
            view = self.core.stats_view()
            view["controller"] = {"handler_errors": self.errors,
                                  "uptime_sec": round(time.time() - self.started, 3)}
            return view

    def change(self, method, *args):
        """Apply one pool change on the core and send its decisions (raises ChangeError)."""
        with self.lock:
            decisions = getattr(self.core, method)(*args)
            self.send(decisions)

    # -- switch lifecycle ----------------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features_handler(self, ev):
        """A switch connected: install the whole proactive pipeline, re-learn connections."""
        dp = ev.msg.datapath
        name = self.names.get(dp.id)
        if name is None:
            LOG.warning("lblab controller: unknown switch dpid %016x (not in the topology); "
                        "ignoring it", dp.id)
            return
        self.datapaths[name] = dp
        self._guard("switch_up", self.core.switch_up, name)
        request = ofmsgs.flow_stats_request(pipeline.cookie(pipeline.COOKIE_CONNECTION),
                                            pipeline.COOKIE_CLASS_MASK)
        self._send_raw(dp, request)
        self.relearn_xids.add((name, request.xid))
        LOG.info("lblab controller: switch %s (dpid %016x) connected", name, dp.id)

    @set_ev_cls(ofp_event.EventOFPStateChange, [DEAD_DISPATCHER])
    def state_change_handler(self, ev):
        """A switch disconnected: stop sending to it."""
        dp = ev.datapath
        name = self.names.get(dp.id) if dp.id is not None else None
        if name is not None and self.datapaths.get(name) is dp:
            del self.datapaths[name]
            with self.lock:
                self.core.switch_down(name)
            LOG.info("lblab controller: switch %s disconnected", name)

    # -- events -------------------------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in_handler(self, ev):
        """A packet-in as an os-ken event (when the switch is not a LabDatapath)."""
        msg = ev.msg
        self.handle_packet_in(msg.datapath, msg.match.get("in_port"), bytes(msg.data))

    def handle_packet_in(self, dp, in_port, data):
        """A packet for the controller: rate-limit, then ask the core.

        LabDatapath calls this in the switch's receive thread (controllers/datapath.py).
        """
        name = self.names.get(dp.id)
        if name is None:
            return
        self._guard("packet_in", self._admitted_packet_in, name, in_port, data,
                    time.monotonic())

    def _admitted_packet_in(self, name, in_port, data, now):
        """Ask the core about a packet-in the rate limits admit (called under ``self.lock``)."""
        if not self.core.admit(name, now, in_port):
            return []
        return self.core.packet_in(name, in_port, data, now)

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def flow_removed_handler(self, ev):
        """A connection flow ended (idle/hard timeout or deleted)."""
        msg = ev.msg
        name = self.names.get(msg.datapath.id)
        self._guard("flow_removed", self.core.flow_removed, name, msg.cookie,
                    ofmsgs.match_dict(msg.match), msg.packet_count, msg.byte_count, msg.reason,
                    time.monotonic())

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def flow_stats_reply_handler(self, ev):
        """Collect a (multipart) flow stats reply, then hand it to the core."""
        msg = ev.msg
        name = self.names.get(msg.datapath.id)
        parts = self.pending_stats.setdefault((name, msg.xid), [])
        parts.extend((s.cookie, ofmsgs.match_dict(s.match), s.packet_count, s.byte_count)
                     for s in msg.body)
        if msg.flags & ofproto_v1_3.OFPMPF_REPLY_MORE:
            return
        flows = self.pending_stats.pop((name, msg.xid))
        learn = (name, msg.xid) in self.relearn_xids
        self.relearn_xids.discard((name, msg.xid))
        self._guard("flow_stats", self.core.flow_stats, name, flows, None, learn)

    def handle_counter_stats(self, dp, xid, flags, counters):
        """A flow stats reply of counter flows only, parsed by LabDatapath (no matches)."""
        name = self.names.get(dp.id)
        parts = self.pending_stats.setdefault((name, xid), [])
        parts.extend((cookie, {}, packets_, bytes_) for cookie, packets_, bytes_ in counters)
        if flags & ofproto_v1_3.OFPMPF_REPLY_MORE:
            return
        flows = self.pending_stats.pop((name, xid))
        self.relearn_xids.discard((name, xid))  # an empty reply to a re-learning request
        self._guard("flow_stats", self.core.flow_stats, name, flows, None, False)

    @set_ev_cls(ofp_event.EventOFPTableStatsReply, MAIN_DISPATCHER)
    def table_stats_reply_handler(self, ev):
        """Record the flow-table sizes of a switch."""
        msg = ev.msg
        name = self.names.get(msg.datapath.id)
        sizes = {s.table_id: s.active_count for s in msg.body
                 if s.table_id <= pipeline.T_L2}
        self._guard("table_stats", self.core.flow_stats, name, [], sizes)

    @set_ev_cls(ofp_event.EventOFPMeterStatsReply, MAIN_DISPATCHER)
    def meter_stats_reply_handler(self, ev):
        """Record how many VIP packets the packet-in meters of a switch passed and dropped."""
        msg = ev.msg
        name = self.names.get(msg.datapath.id)
        meters = {m.meter_id: (m.packet_in_count,
                               sum(b.packet_band_count for b in m.band_stats))
                  for m in msg.body}
        self._guard("meter_stats", self.core.meter_stats, name, meters)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def error_msg_handler(self, ev):
        """Log OpenFlow errors from switches (a refused flow is a bug worth seeing)."""
        msg = ev.msg
        name = self.names.get(msg.datapath.id)
        with self.lock:
            stats = self.core.switch_stats.get(name)
            if stats is not None:
                stats["errors"] += 1
        LOG.warning("lblab controller: switch %s error type=%d code=%d data=%s", name,
                    msg.type, msg.code, bytes(msg.data[:64]).hex())

    # -- background loops ---------------------------------------------------------------

    def _tick_loop(self):
        period = steering.tick_period(TICK_SEC, self.config.controller.reweight_interval)
        while True:
            self._guard("tick", self.core.tick, time.monotonic())
            hub.sleep(period)

    def _stats_loop(self):
        interval = self.config.controller.stats_interval
        kinds = [pipeline.COOKIE_CONNECTION, pipeline.COOKIE_POST]
        while True:
            hub.sleep(interval)
            for dp in list(self.datapaths.values()):
                try:
                    for kind in kinds:
                        self._send_raw(dp, ofmsgs.flow_stats_request(
                            pipeline.cookie(kind), pipeline.COOKIE_CLASS_MASK))
                    self._send_raw(dp, ofmsgs.table_stats_request())
                    if self.config.controller.packet_in_meter:
                        self._send_raw(dp, ofmsgs.meter_stats_request())
                except Exception:  # noqa: BLE001 -- a dead connection must not end polling
                    LOG.exception("lblab controller: stats poll failed; carrying on")


def switch_names(graph):
    """Return ``{dpid int: switch name}`` of a topology graph."""
    return {int(graph.nodes[s]["dpid"], 16): s for s in graphs.switches(graph)}
