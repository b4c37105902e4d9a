"""LabDatapath, the l4 hot path: packet-in decoding agrees with os-ken's parser, messages are
split correctly out of any read pattern, and writes go out at once (real TCP sockets)."""
import socket
import struct
import threading
import time

import pytest
from os_ken import cfg
from os_ken.controller.handler import MAIN_DISPATCHER
from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controllers import datapath, packets

SYN = packets.tcp("00:00:00:00:00:01", "02:00:0a:00:00:64", "10.0.0.1", "10.0.0.100",
                  40000, 80, 1, 0, packets.TCP_SYN)


def packet_in(match, data, xid=7, reason=ofp.OFPR_ACTION, cookie=0x0300000000000000):
    """Return the wire bytes of an OpenFlow 1.3 packet-in (what a switch sends)."""
    body = bytearray()
    match_len = match.serialize(body, 0)  # pads the match to 8 bytes
    body += b"\0\0" + data
    fixed = struct.pack("!IHBBQ", ofp.OFP_NO_BUFFER, len(data), reason, 1, cookie)
    head = struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, 8 + len(fixed) + len(body),
                       xid)
    assert match_len >= 4
    return head + fixed + bytes(body)


class FakeDatapath:
    ofproto = ofp
    ofproto_parser = parser
    id = 1


@pytest.mark.parametrize("fields", [
    {"in_port": 3},
    {"in_port": 0xfffffffe},
    {"metadata": 0x1122, "in_port": 7, "tunnel_id": 9},
    {"in_phy_port": 2, "in_port": 5, "eth_type": 0x0800, "ipv4_src": "10.0.0.1"},
    {},
])
def test_packet_in_fields_agree_with_os_ken(fields):
    raw = packet_in(parser.OFPMatch(**fields), SYN)
    in_port, data = datapath.packet_in_fields(raw)
    version, msg_type, msg_len, xid = ofproto_parser.header(raw)
    msg = ofproto_parser.msg(FakeDatapath(), version, msg_type, msg_len, xid, raw)
    assert in_port == msg.match.get("in_port")
    assert data == bytes(msg.data) == SYN


@pytest.mark.parametrize("mutate, expected", [
    (lambda raw: raw[:2] + struct.pack("!H", len(raw) + 10) + raw[4:], "does not fit"),
    (lambda raw: raw[:26] + struct.pack("!H", 4000) + raw[28:], "runs past"),
    (lambda raw: raw[:26] + struct.pack("!H", 2) + raw[28:], "runs past"),
    (lambda raw: raw[:2] + struct.pack("!H", 20) + raw[4:20], "does not fit"),
])
def test_bad_packet_in_is_refused_with_its_reason(mutate, expected):
    raw = mutate(packet_in(parser.OFPMatch(in_port=1), SYN))
    with pytest.raises(datapath.PacketInError, match=expected):
        datapath.packet_in_fields(raw)


@pytest.fixture
def connected():
    """Yield (LabDatapath serving one end of a TCP connection, the switch's end, sink calls)."""
    cfg.CONF(args=[], project="os_ken")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    switch = socket.create_connection(listener.getsockname())
    ours, _ = listener.accept()
    listener.close()
    calls = []
    dp = datapath.LabDatapath(ours, ("127.0.0.1", 1))
    dp.packet_in_sink = lambda d, in_port, data: calls.append((d, in_port, data))
    dp.state = MAIN_DISPATCHER  # as after the handshake (no os-ken app manager here)
    thread = threading.Thread(target=dp._recv_loop, daemon=True)
    thread.start()
    yield dp, switch, calls
    switch.close()
    thread.join(timeout=5)
    ours.close()


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_packet_ins_reach_the_sink_whatever_the_segmenting(connected):
    dp, switch, calls = connected
    msgs = [packet_in(parser.OFPMatch(in_port=port), SYN + bytes([port])) for port in (1, 2, 3)]
    stream = b"".join(msgs)
    switch.sendall(stream[:5])       # less than a header
    time.sleep(0.05)
    switch.sendall(stream[5:100])    # the rest of the first message and part of the second
    time.sleep(0.05)
    switch.sendall(stream[100:])     # the rest, two messages at once
    assert wait_for(lambda: len(calls) == 3)
    assert [(c[1], c[2]) for c in calls] == [(p, SYN + bytes([p])) for p in (1, 2, 3)]
    assert all(c[0] is dp for c in calls)


def test_bad_packet_in_is_skipped_and_the_connection_carries_on(connected):
    _, switch, calls = connected
    bad = bytearray(packet_in(parser.OFPMatch(in_port=1), SYN))
    bad[26:28] = struct.pack("!H", 4000)  # match length past the message
    switch.sendall(bytes(bad) + packet_in(parser.OFPMatch(in_port=9), SYN))
    assert wait_for(lambda: len(calls) == 1)
    assert calls[0][1] == 9


def test_send_writes_at_once_and_fails_quietly_on_a_closed_connection(connected):
    dp, switch, _ = connected
    switch.settimeout(5)
    assert dp.send(b"\x04\x02\x00\x08\x00\x00\x00\x01")
    assert switch.recv(100) == b"\x04\x02\x00\x08\x00\x00\x00\x01"
    switch.close()
    results = [dp.send(b"x" * 65536) for _ in range(20)]  # the peer is gone: EPIPE/ECONNRESET
    assert results[-1] is False


def flow_stats_reply(entries, flags=0, xid=9):
    """Raw OpenFlow 1.3 flow stats reply: entries of (cookie, packets, bytes, match fields)."""
    body = b""
    for cookie, packets_, bytes_, match in entries:
        m = bytearray()
        parser.OFPMatch(**match).serialize(m, 0)
        length = 48 + len(m)
        body += struct.pack("!HBxIIHHHH4xQQQ", length, 2, 1, 2, 101, 0, 0, 0, cookie, packets_,
                            bytes_) + bytes(m)
    head = struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY, 16 + len(body), xid)
    return head + struct.pack("!HH4x", ofp.OFPMP_FLOW, flags) + body


COUNTER_MATCH = {"eth_type": 0x0800, "ipv4_dst": "10.0.0.6", "ip_proto": 6,
                 "tcp_flags": (1, 1)}


def test_counter_stats_fields_agree_with_os_ken():
    entries = [(0x0700010000010000, 12, 840, COUNTER_MATCH),
               (0x0800010000020000, 3, 200, dict(COUNTER_MATCH, tcp_flags=(4, 5)))]
    raw = flow_stats_reply(entries, flags=ofp.OFPMPF_REPLY_MORE)
    flags, got = datapath.counter_stats_fields(raw, {0x07, 0x08})
    msg = ofproto_parser.msg(None, ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY, len(raw), 9, raw)
    assert flags == msg.flags == ofp.OFPMPF_REPLY_MORE
    assert got == [(s.cookie, s.packet_count, s.byte_count) for s in msg.body]
    assert got == [(c, p, b) for c, p, b, _ in entries]


def test_other_replies_are_left_to_os_ken():
    mixed = flow_stats_reply([(0x0700010000010000, 1, 1, COUNTER_MATCH),
                              (0x0300010000010000, 1, 1, COUNTER_MATCH)])
    assert datapath.counter_stats_fields(mixed, {0x07, 0x08}) is None
    short = flow_stats_reply([(0x0700010000010000, 1, 1, COUNTER_MATCH)])[:-4]
    assert datapath.counter_stats_fields(short, {0x07, 0x08}) is None
    assert datapath.counter_stats_fields(packet_in(parser.OFPMatch(in_port=1), b"x"),
                                         {0x07}) is None
