"""A user-space lossy link between one WebRTC peer and the node (there is no `tc netem` here).

The peer is pointed at the link's port instead of the node's (the test page rewrites the port of the node's
host candidate in the answer); the link relays every datagram both ways through a socket of its own toward
the node, so the node sees the link as the peer. Toward the peer it drops RTP, and only RTP, with a seeded
probability: STUN, DTLS and RTCP always pass (RFC 7983 demultiplexing; RTCP by its packet type, RFC 5761 §4),
so the session stays up and only media is impaired, as braid-load's --downlink-loss does.
"""

import asyncio
import random


def is_rtp(datagram):
    """RTP, not RTCP: first byte 128-191 (RFC 7983) and a second byte that is no RTCP packet type
    (192-223 with the marker bit folded in, RFC 5761 §4)."""
    return len(datagram) >= 12 and 128 <= datagram[0] <= 191 and not 192 <= datagram[1] <= 223


class LossyLink:
    def __init__(self, node_address, loss, seed=1):
        self.node_address = node_address
        self.loss = loss
        self.random = random.Random(seed)
        self.peer = None              # the peer's address, learnt from its first datagram
        self.listener = None          # the peer's side
        self.upstream = None          # the node's side
        self.rtp_passed = 0
        self.rtp_dropped = 0

    async def start(self, host):
        loop = asyncio.get_running_loop()
        link = self

        class PeerSide(asyncio.DatagramProtocol):
            def datagram_received(self, data, address):
                link.peer = address
                if link.upstream is not None:
                    link.upstream.sendto(data)

        class NodeSide(asyncio.DatagramProtocol):
            def datagram_received(self, data, address):
                if link.peer is None or link.listener is None:
                    return
                if is_rtp(data):
                    if link.random.random() < link.loss:
                        link.rtp_dropped += 1
                        return
                    link.rtp_passed += 1
                link.listener.sendto(data, link.peer)

        self.listener, _ = await loop.create_datagram_endpoint(PeerSide, local_addr=(host, 0))
        self.upstream, _ = await loop.create_datagram_endpoint(NodeSide, remote_addr=self.node_address)
        return self.listener.get_extra_info("sockname")[1]

    def measured_loss(self):
        total = self.rtp_passed + self.rtp_dropped
        return self.rtp_dropped / total if total else 0.0

    def close(self):
        for transport in (self.listener, self.upstream):
            if transport is not None:
                transport.close()
