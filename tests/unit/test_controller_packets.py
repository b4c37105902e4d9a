"""Packet codec of the controller: frames it builds parse back; checksums are valid."""
import struct

from controllers import packets


def _fold(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_tcp_frame_round_trips_with_valid_checksums():
    frame = packets.tcp("02:00:00:00:fe:fe", "00:00:00:00:00:06", "10.255.255.254",
                        "10.0.0.6", 40001, 80, 0x10000000, 5, packets.TCP_SYN)
    f = packets.parse(frame)
    assert (f.eth_src, f.eth_dst, f.ip_src, f.ip_dst) == (
        "02:00:00:00:fe:fe", "00:00:00:00:00:06", "10.255.255.254", "10.0.0.6")
    assert (f.ip_proto, f.tp_src, f.tp_dst, f.tcp_flags, f.tcp_seq, f.tcp_ack) == (
        6, 40001, 80, packets.TCP_SYN, 0x10000000, 5)
    ip, tcp = frame[14:34], frame[34:]
    assert _fold(ip) == 0xFFFF
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(tcp))
    assert _fold(pseudo + tcp) == 0xFFFF


def test_arp_request_and_reply():
    request = packets.arp(packets.ARP_REQUEST, "00:00:00:00:00:01", "10.0.0.1",
                          "00:00:00:00:00:00", "10.0.0.100")
    f = packets.parse(request)
    assert f.eth_dst == packets.BROADCAST_MAC and f.arp_op == 1 and f.arp_tpa == "10.0.0.100"
    reply = packets.arp(packets.ARP_REPLY, "02:00:0a:00:00:64", "10.0.0.100",
                        "00:00:00:00:00:01", "10.0.0.1")
    f = packets.parse(reply)
    assert (f.eth_dst, f.arp_op, f.arp_sha, f.arp_spa) == (
        "00:00:00:00:00:01", 2, "02:00:0a:00:00:64", "10.0.0.100")


def test_udp_and_truncated_frames():
    frame = bytearray(packets.tcp("00:00:00:00:00:01", "02:00:0a:00:00:64", "10.0.0.1",
                                  "10.0.0.100", 5000, 5300, 0, 0, 0))
    frame[23] = packets.IP_PROTO_UDP
    f = packets.parse(bytes(frame))
    assert (f.ip_proto, f.tp_src, f.tp_dst, f.tcp_flags) == (17, 5000, 5300, None)
    assert packets.parse(bytes(frame[:30])).ip_src is None
    assert packets.parse(b"").eth_type is None
