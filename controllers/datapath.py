"""os-ken's Datapath with a short path for packet-ins and direct writes (the l4 hot path).

In l4 mode every new connection costs one packet-in and one packet-out. Measured on the bench
lab (``bench/l4_connrate.py``), stock os-ken spent about 260 µs of CPU per packet-in, mostly not
in the balancer: it reads each message with two ``recv`` calls, builds an ``OFPPacketIn`` and
an ``OFPMatch`` object field by field, passes the event to the app's thread through a queue,
and every reply to a send thread through another queue.

:class:`LabDatapath` changes three things and keeps the rest of os-ken's behaviour:

- it reads whatever the socket has (up to 64 KiB) and splits messages out of that buffer;
- a packet-in of a connected switch (MAIN_DISPATCHER) is decoded with :func:`packet_in_fields`
  (in_port and data only) and handed to the registered sink in this thread; every other message
  is parsed by os-ken and dispatched to apps and os-ken's own handlers exactly as os-ken does;
- :meth:`LabDatapath.send` writes to the socket under a lock instead of queueing to the send
  thread (which then only closes connections). A failed or timed-out write shuts the socket down,
  as os-ken's send thread does, since a partly written message cannot be recovered.

The decoding is pure and tested in ``tests/unit/test_controller_datapath.py``.
"""
import contextlib
import logging
import socket
import struct
import threading

from os_ken.base import app_manager  # noqa: F401 -- os-ken's controller module needs it first
from os_ken.controller import controller, ofp_event
from os_ken.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER
from os_ken.ofproto import ofproto_parser, ofproto_v1_3

LOG = logging.getLogger("lblab.controller")

OFP_HEADER = struct.Struct("!BBHI")
# ofp_packet_in after the header: buffer_id, total_len, reason, table_id, cookie
_PACKET_IN_FIXED = struct.Struct("!IHBBQ")
_MATCH_HEADER = struct.Struct("!HH")
_OXM_HEADER = struct.Struct("!I")
_U32 = struct.Struct("!I")
OXM_IN_PORT = 0x80000004     # OFPXMC_OPENFLOW_BASIC, field 0 (in_port), no mask, 4 bytes
READ_SIZE = 65536
# a flow stats reply: after the header, ofp_multipart_reply's type, flags, pad; each
# ofp_flow_stats starts with its length, and holds cookie, packet and byte counts at 24..48
_MULTIPART = struct.Struct("!HH4x")
_FLOW_STATS_LEN = struct.Struct("!H")
_FLOW_STATS_COUNTS = struct.Struct("!QQQ")
_FLOW_STATS_FIXED = 48


class PacketInError(ValueError):
    """A packet-in whose match or length fields contradict the message length."""


def packet_in_fields(buf):
    """Return (in_port, data) of an OpenFlow 1.3 packet-in message.

    Args:
        buf (bytes|memoryview): the whole message, header included.
    Returns:
        tuple[int|None, bytes]: in_port (None if the match has none) and the packet.
    Raises:
        PacketInError: the match runs past the message or is shorter than its header.
    """
    _, _, msg_len, _ = OFP_HEADER.unpack_from(buf, 0)
    if msg_len > len(buf) or msg_len < OFP_HEADER.size + _PACKET_IN_FIXED.size + 4:
        raise PacketInError(f"packet-in: length {msg_len} does not fit a {len(buf)}-byte buffer")
    offset = OFP_HEADER.size + _PACKET_IN_FIXED.size
    _, match_len = _MATCH_HEADER.unpack_from(buf, offset)
    if match_len < 4 or offset + match_len > msg_len:
        raise PacketInError(f"packet-in: match length {match_len} runs past the message")
    in_port = None
    pos, end = offset + 4, offset + match_len
    while pos + 4 <= end:
        (oxm,) = _OXM_HEADER.unpack_from(buf, pos)
        length = oxm & 0xFF
        if oxm == OXM_IN_PORT and pos + 8 <= end:
            (in_port,) = _U32.unpack_from(buf, pos + 4)
        pos += 4 + length
    data_start = offset + ((match_len + 7) // 8) * 8 + 2  # match padded to 8, then 2 pad bytes
    if data_start > msg_len:
        raise PacketInError("packet-in: no room for the packet after the match")
    return in_port, bytes(buf[data_start:msg_len])


def counter_stats_fields(buf, classes):
    """Return (flags, [(cookie, packets, bytes)]) of a flow stats reply whose flows all have a
    cookie class in ``classes``, else None (then os-ken parses it as usual).

    The counter polls of ``in_flight: counters/group`` (controllers/steering.py) need no match,
    and os-ken's parser would spend most of their cost building one per flow.
    """
    _, msg_type, msg_len, _ = OFP_HEADER.unpack_from(buf, 0)
    body = OFP_HEADER.size + _MULTIPART.size
    if msg_type != ofproto_v1_3.OFPT_MULTIPART_REPLY or msg_len > len(buf) or msg_len < body:
        return None
    mp_type, flags = _MULTIPART.unpack_from(buf, OFP_HEADER.size)
    if mp_type != ofproto_v1_3.OFPMP_FLOW:
        return None
    out, pos = [], body
    while pos < msg_len:
        if pos + _FLOW_STATS_FIXED > msg_len:
            return None
        (length,) = _FLOW_STATS_LEN.unpack_from(buf, pos)
        if length < _FLOW_STATS_FIXED or pos + length > msg_len:
            return None
        cookie, packets, nbytes = _FLOW_STATS_COUNTS.unpack_from(buf, pos + 24)
        if cookie >> 56 not in classes:
            return None
        out.append((cookie, packets, nbytes))
        pos += length
    return flags, out


class LabDatapath(controller.Datapath):
    """A switch connection with the l4 hot path short-cut (see the module docstring).

    ``packet_in_sink`` is ``callable(datapath, in_port, data)`` or None; the balancer app sets it
    when it starts. Without a sink, packet-ins go to apps as os-ken events as usual.
    """

    packet_in_sink = None
    # ``callable(datapath, xid, flags, [(cookie, packets, bytes)])`` for flow stats replies of
    # only these cookie classes (the counter polls), parsed by counter_stats_fields
    counter_stats_sink = None
    counter_classes = frozenset()

    def __init__(self, sock, address):
        super().__init__(sock, address)
        self._write_lock = threading.Lock()

    def send(self, buf, close_socket=False):
        """Write ``buf`` now (under a lock); a closing send still goes through the send thread."""
        if close_socket:
            return super().send(buf, close_socket=True)
        if self.state == DEAD_DISPATCHER or self.send_q is None:
            return False
        try:
            with self._write_lock:
                self.socket.sendall(buf)
        except OSError as exc:  # socket.timeout is an OSError: the stream is now unusable
            LOG.debug("lblab controller: write to switch %s failed (%s); closing", self.address,
                      exc)
            try:
                self.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return False
        return True

    def _recv_loop(self):
        buf = bytearray()
        while self.state != DEAD_DISPATCHER:
            try:
                data = self.socket.recv(READ_SIZE)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            buf += data
            start = 0
            while len(buf) - start >= OFP_HEADER.size:
                version, msg_type, msg_len, xid = OFP_HEADER.unpack_from(buf, start)
                msg_len = max(msg_len, OFP_HEADER.size)  # a lying length must not stall us
                if len(buf) - start < msg_len:
                    break
                self._dispatch(version, msg_type, msg_len, xid,
                               memoryview(buf)[start:start + msg_len])
                start += msg_len
            del buf[:start]

    def _dispatch(self, version, msg_type, msg_len, xid, view):
        sink = self.packet_in_sink
        if (sink is not None and msg_type == ofproto_v1_3.OFPT_PACKET_IN
                and version == ofproto_v1_3.OFP_VERSION and self.state == MAIN_DISPATCHER):
            try:
                in_port, data = packet_in_fields(view)
            except PacketInError as exc:
                LOG.warning("lblab controller: switch %s sent a bad packet-in: %s",
                            self.address, exc)
                return
            finally:
                view.release()
            sink(self, in_port, data)
            return
        stats_sink = self.counter_stats_sink
        if (stats_sink is not None and msg_type == ofproto_v1_3.OFPT_MULTIPART_REPLY
                and version == ofproto_v1_3.OFP_VERSION and self.state == MAIN_DISPATCHER):
            got = counter_stats_fields(view, self.counter_classes)
            if got is not None:
                view.release()
                stats_sink(self, xid, got[0], got[1])
                return
        raw = bytes(view)
        view.release()
        msg = ofproto_parser.msg(self, version, msg_type, msg_len, xid, raw)
        if not msg:
            return
        ev = ofp_event.ofp_msg_to_ev(msg)
        if self.ofp_brick is None:
            return
        self.ofp_brick.send_event_to_observers(ev, self.state)
        state = self.state  # os-ken's own handlers are chosen before any of them runs
        for handler in [h for h in self.ofp_brick.get_handlers(ev)
                        if state in h.callers[ev.__class__].dispatchers]:
            handler(ev)


def connection_factory(sock, address):
    """Serve one switch connection with a :class:`LabDatapath` (os-ken's factory, our class)."""
    with contextlib.closing(LabDatapath(sock, address)) as dp:
        try:
            dp.serve()
        except Exception:
            LOG.exception("lblab controller: connection from %s (dpid %s) failed", address,
                          "unknown" if dp.id is None else f"{dp.id:016x}")
            raise


def install():
    """Make os-ken's OpenFlow server serve every switch connection with :class:`LabDatapath`.

    Call before os-ken starts its server. os-ken's own ``Datapath`` class stays as it is (its
    methods name it in ``super()``); only the connection factory the server calls is replaced.
    """
    controller.datapath_connection_factory = connection_factory
