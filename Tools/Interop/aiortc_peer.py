"""aiortc peers for the interop suite: a WHIP publisher (lavfi sine + testsrc) and a WHEP subscriber that
decodes what it receives. Each prints one JSON object per line on stdout for the harness.

    python aiortc_peer.py publish URL [--seconds N]
    python aiortc_peer.py subscribe URL [--seconds N]
"""

import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.request

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer

# aioice gathers host candidates on every interface except loopback. Keep the test traffic on loopback:
# gather 127.0.0.1 only (the node advertises 127.0.0.1 as its one host candidate).
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []


def peer_connection():
    # No ICE servers: without this aiortc falls back to a public STUN server and gathers server-reflexive
    # candidates through it. The node is on loopback; host candidates are all the test needs.
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def emit(**fields):
    print(json.dumps(fields), flush=True)


def post_offer(url, sdp):
    """RFC 9725 §4.2: POST the offer, return (Location, answer SDP); raise with the status and reason."""
    request = urllib.request.Request(url, data=sdp.encode(), method="POST",
                                     headers={"Content-Type": "application/sdp"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 201:
                raise RuntimeError(f"POST {url}: HTTP {response.status}, expected 201")
            return response.headers.get("Location"), response.read().decode()
    except urllib.error.HTTPError as error:
        reason = error.read().decode(errors="replace").strip()[:300] or "(empty body)"
        raise RuntimeError(f"POST {url}: HTTP {error.code}: {reason}") from None


async def negotiate(pc, url):
    # aiortc gathers every candidate inside setLocalDescription: the offer is complete (no trickle).
    await pc.setLocalDescription(await pc.createOffer())
    location, answer = await asyncio.to_thread(post_offer, url, pc.localDescription.sdp)
    emit(event="answered", location=location)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return location


async def wait_connected(pc, timeout):
    deadline = time.monotonic() + timeout
    while pc.connectionState != "connected":
        if pc.connectionState == "failed":
            raise RuntimeError("peer connection failed (ICE or DTLS)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not connected after {timeout:.0f} s (state {pc.connectionState}, "
                               f"ICE {pc.iceConnectionState})")
        await asyncio.sleep(0.1)
    emit(event="connected")


async def publish(url, seconds):
    pc = peer_connection()
    audio = MediaPlayer("sine=frequency=440", format="lavfi")
    video = MediaPlayer("testsrc=size=640x360:rate=30", format="lavfi")
    try:
        pc.addTransceiver(audio.audio, direction="sendonly")
        pc.addTransceiver(video.video, direction="sendonly")
        await negotiate(pc, url)
        await wait_connected(pc, 15)
        await asyncio.sleep(seconds)
        emit(event="done")
    finally:
        await pc.close()
        for player in (audio, video):
            for track in (player.audio, player.video):
                if track is not None:
                    track.stop()


async def subscribe(url, seconds):
    pc = peer_connection()
    counts = {"audio": 0, "video": 0}
    sizes = set()
    consumers = []

    async def consume(track):
        # recv() returns decoded frames: av.AudioFrame from the Opus decoder, av.VideoFrame from VP8.
        while True:
            frame = await track.recv()
            counts[track.kind] += 1
            if track.kind == "video":
                sizes.add(f"{frame.width}x{frame.height}")

    @pc.on("track")
    def on_track(track):
        consumers.append(asyncio.ensure_future(consume(track)))

    try:
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        await negotiate(pc, url)
        await wait_connected(pc, 15)
        # Wait for the first decoded frame of each kind, then count for `seconds`, one sample a second.
        deadline = time.monotonic() + 15
        while counts["audio"] == 0 or counts["video"] == 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no decoded frames within 15 s of connecting: audio {counts['audio']}, "
                                   f"video {counts['video']}")
            await asyncio.sleep(0.1)
        for second in range(seconds + 1):
            emit(event="sample", t=second, audio_frames=counts["audio"], video_frames=counts["video"],
                 video_sizes=sorted(sizes))
            if second < seconds:
                await asyncio.sleep(1)
        emit(event="done")
    finally:
        for consumer in consumers:
            consumer.cancel()
        await pc.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=["publish", "subscribe"])
    parser.add_argument("url")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    run = publish if args.role == "publish" else subscribe
    try:
        asyncio.run(run(args.url, args.seconds))
    except Exception as error:  # noqa: BLE001 (reported to the harness as one line)
        emit(event="error", error=f"{type(error).__name__}: {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
