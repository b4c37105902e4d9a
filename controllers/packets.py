"""Pure packet codec for the controller: parse packet-in bytes into facts, build ARP/TCP frames.

Only what the balancer needs (Ethernet, ARP, IPv4, TCP, UDP), with ``struct``: parsing a
packet-in costs a few microseconds instead of os_ken.lib.packet's object tree, and a malformed
frame gives ``None`` fields rather than an exception.
"""
import ipaddress
import socket
import struct
from collections import namedtuple

ETH_TYPE_ARP = 0x0806
ETH_TYPE_IPV4 = 0x0800
ARP_REQUEST = 1
ARP_REPLY = 2
IP_PROTO_TCP = 6
IP_PROTO_UDP = 17
TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"

PacketFacts = namedtuple("PacketFacts", (
    "eth_src", "eth_dst", "eth_type", "arp_op", "arp_sha", "arp_spa", "arp_tpa",
    "ip_src", "ip_dst", "ip_proto", "tp_src", "tp_dst", "tcp_flags", "tcp_seq", "tcp_ack"))
PacketFacts.__new__.__defaults__ = (None,) * len(PacketFacts._fields)


def mac_str(raw):
    """Return ``aa:bb:…`` for 6 raw bytes."""
    return raw.hex(":")


def mac_bytes(mac):
    """Return the 6 raw bytes of ``aa:bb:…``."""
    return bytes(int(x, 16) for x in mac.split(":"))


def ip_str(raw):
    """Return dotted-quad text for 4 raw bytes."""
    return socket.inet_ntoa(raw)


def parse(data):
    """Return the :class:`PacketFacts` of an Ethernet frame.

    Args:
        data (bytes): the frame, as in a packet-in.
    Returns:
        PacketFacts: fields not present (or truncated) are None; never raises on short input.
    """
    if len(data) < 14:
        return PacketFacts()
    eth_dst, eth_src = mac_str(data[0:6]), mac_str(data[6:12])
    (eth_type,) = struct.unpack_from("!H", data, 12)
    base = dict(eth_src=eth_src, eth_dst=eth_dst, eth_type=eth_type)
    if eth_type == ETH_TYPE_ARP and len(data) >= 42:
        op = struct.unpack_from("!H", data, 20)[0]
        return PacketFacts(arp_op=op, arp_sha=mac_str(data[22:28]), arp_spa=ip_str(data[28:32]),
                           arp_tpa=ip_str(data[38:42]), **base)
    if eth_type != ETH_TYPE_IPV4 or len(data) < 34:
        return PacketFacts(**base)
    ihl = (data[14] & 0x0F) * 4
    proto = data[23]
    ip = dict(ip_src=ip_str(data[26:30]), ip_dst=ip_str(data[30:34]), ip_proto=proto)
    l4 = 14 + ihl
    if ihl < 20:
        return PacketFacts(**base)
    if proto == IP_PROTO_TCP and len(data) >= l4 + 14:
        sport, dport, seq, ack = struct.unpack_from("!HHII", data, l4)
        return PacketFacts(tp_src=sport, tp_dst=dport, tcp_seq=seq, tcp_ack=ack,
                           tcp_flags=data[l4 + 13], **ip, **base)
    if proto == IP_PROTO_UDP and len(data) >= l4 + 4:
        sport, dport = struct.unpack_from("!HH", data, l4)
        return PacketFacts(tp_src=sport, tp_dst=dport, **ip, **base)
    return PacketFacts(**ip, **base)


def _eth(dst_mac, src_mac, eth_type):
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", eth_type)


def arp(op, src_mac, src_ip, dst_mac, dst_ip, eth_dst=None):
    """Return an ARP frame.

    Args:
        op (int): ARP_REQUEST or ARP_REPLY.
        src_mac, src_ip: sender hardware/protocol address.
        dst_mac, dst_ip: target hardware/protocol address (``00:…`` in a request).
        eth_dst (str|None): Ethernet destination (default broadcast for a request, else dst_mac).
    """
    if eth_dst is None:
        eth_dst = BROADCAST_MAC if op == ARP_REQUEST else dst_mac
    body = struct.pack("!HHBBH", 1, ETH_TYPE_IPV4, 6, 4, op)
    body += mac_bytes(src_mac) + ipaddress.IPv4Address(src_ip).packed
    body += mac_bytes(dst_mac) + ipaddress.IPv4Address(dst_ip).packed
    return _eth(eth_dst, src_mac, ETH_TYPE_ARP) + body


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp(src_mac, dst_mac, src_ip, dst_ip, sport, dport, seq, ack, flags):
    """Return an Ethernet/IPv4/TCP frame with correct checksums and no payload."""
    src, dst = ipaddress.IPv4Address(src_ip).packed, ipaddress.IPv4Address(dst_ip).packed
    header = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                         5 << 4, flags, 64240, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, IP_PROTO_TCP, len(header))
    header = header[:16] + struct.pack("!H", _checksum(pseudo + header)) + header[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(header), 0, 0x4000, 64, IP_PROTO_TCP,
                     0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return _eth(dst_mac, src_mac, ETH_TYPE_IPV4) + ip + header
