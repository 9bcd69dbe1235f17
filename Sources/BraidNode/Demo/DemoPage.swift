import Foundation

/// The demo page: HTML with inline CSS and JavaScript, no external resources.
///
/// It publishes camera and microphone with WHIP (`POST /whip/{room}`) as three simulcast layers (rids
/// `q`, `h`, `f` at 1/4, 1/2 and full resolution, listed low to high), and plays the room with WHEP
/// (`POST /whep/{room}`) through pre-allocated recvonly transceivers (1 audio, 3 video) that the node fills
/// with the room's tracks, including tracks published later. It shows each remote video, a live stats line
/// and a leave button that `DELETE`s both resources.
///
/// When a peer connection fails or disconnects, or media that was flowing stops for a second and the node
/// does not answer `GET /healthz` within half a second (its node is lost), the page moves to another node of the
/// cluster: it remembers the nodes `GET /api/v1/mesh` lists (`nodes[].http_url`, draining ones skipped;
/// asked at start, every 15 s and after each move), closes both connections and publishes and plays again
/// at the next one. Counters of `stats()` carry over the move; `window.braid.node()` tells the node in use.
///
/// With `?view=mix`, `?view=composite` or `?view=mix,composite` the page plays the room's edge functions
/// instead of every track: it finds the room's running `audio-mix` (all audio) or `composite` (all video,
/// 640×360) function, or starts one (`POST /api/v1/rooms/{room}/functions`, with the page's token), and
/// names the outputs in its WHEP request (`?track=`). Functions outlive the page: other viewers share them.
///
/// For automation the page exposes `window.braid.stats()`, resolving to
/// `{framesDecoded, audioSamplesReceived, frameWidth, frameHeight}` summed (or maximal, for sizes) over the
/// WHEP connection's inbound streams, and `window.braid.leave()`.
public enum DemoPage {
    /// The page for `room`, which must be a valid room name (``WebRTCRoutes/isValidRoom(_:)``): it is
    /// inserted verbatim into the HTML and JavaScript.
    public static func html(room: String) -> String {
        Self.template.replacingOccurrences(of: "{{ROOM}}", with: room)
    }

    static let template = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Braid demo: {{ROOM}}</title>
        <style>
          body { font: 15px/1.4 system-ui, sans-serif; margin: 1rem; background: #111; color: #eee; }
          header { display: flex; gap: 1rem; align-items: center; }
          h1 { font-size: 1.2rem; margin: 0; }
          button { font: inherit; padding: .3rem .9rem; }
          #videos { display: flex; flex-wrap: wrap; gap: .5rem; margin-top: .8rem; }
          figure { margin: 0; background: #000; }
          figcaption { font-size: .8rem; color: #aaa; padding: .2rem .4rem; }
          video { width: 320px; height: 180px; display: block; background: #222; }
          #stats, #status { font-family: ui-monospace, monospace; font-size: .85rem; color: #9c9; }
        </style>
        </head>
        <body>
        <header>
          <h1>Braid room <code>{{ROOM}}</code></h1>
          <button id="leave" type="button">Leave</button>
        </header>
        <p id="status">starting</p>
        <p id="stats"></p>
        <div id="videos">
          <figure id="self"><video id="local" autoplay muted playsinline></video><figcaption>you</figcaption></figure>
        </div>
        <script>
        "use strict";
        (() => {
          const whipURL = "/whip/{{ROOM}}";
          const whepURL = "/whep/{{ROOM}}";
          // The node in use (this page's own at first) and the cluster's other nodes, as last listed.
          let node = location.origin;
          let nodes = [];
          let moving = false;
          let moves = 0;
          let carried = { framesDecoded: 0, audioSamplesReceived: 0 };
          const query = new URLSearchParams(location.search);
          const publishing = query.get("publish") !== "0";
          const subscribing = query.get("subscribe") !== "0";
          const token = query.get("token");
          // Edge-function views: "mix" (the room's audio-mix) and "composite" (a grid of the room's videos).
          const views = (query.get("view") || "").split(",").filter((v) => v === "mix" || v === "composite");
          const resources = [];
          const connections = [];
          let localStream = null;
          let subscriber = null;
          let left = false;

          const statusLine = document.getElementById("status");
          function status(text) { statusLine.textContent = text; }

          function headers(contentType) {
            const result = {};
            if (contentType) result["Content-Type"] = contentType;
            if (token) result["Authorization"] = "Bearer " + token;
            return result;
          }

          // The node is ICE-lite: it learns our addresses from our checks, so the offer goes out at once,
          // without waiting for candidates or trickling them.
          async function negotiate(pc, url) {
            await pc.setLocalDescription(await pc.createOffer());
            const response = await fetch(url, {
              method: "POST", headers: headers("application/sdp"), body: pc.localDescription.sdp
            });
            const body = await response.text();
            if (response.status !== 201) throw new Error(url + ": " + response.status + " " + body.trim());
            // A draining node in a cluster answers 307 to another one; fetch repeats the POST there.
            if (response.redirected) node = new URL(response.url).origin;
            const resource = response.headers.get("Location");
            if (resource) resources.push(new URL(resource, response.url).href);
            await pc.setRemoteDescription({ type: "answer", sdp: body });
            // A draining node says goodbye with a DTLS close_notify: Chromium then moves the DTLS transport
            // to "closed" while ICE (and so connectionState) may stay "connected", so watch the transport.
            const dtls = pc.getTransceivers()[0]?.sender.transport;
            if (dtls) dtls.addEventListener("statechange", () => {
              if (dtls.state === "closed" || dtls.state === "failed") moveOn(pc);
            });
          }

          function watch(pc, name) {
            pc.addEventListener("connectionstatechange", () => {
              status(name + " " + pc.connectionState + (moves ? " (moved " + moves + "x, at " + node + ")" : ""));
              if (["failed", "disconnected", "closed"].includes(pc.connectionState)) moveOn(pc);
            });
          }

          // The cluster's nodes that take sessions, from the node in use or, when it is gone, one remembered.
          async function listNodes() {
            for (const from of [node, ...nodes]) {
              try {
                const response = await fetch(new URL("/api/v1/mesh", from), { signal: AbortSignal.timeout(1500) });
                if (!response.ok) continue;
                const mesh = await response.json();
                const listed = (mesh.nodes || []).filter((n) => n.http_url && !n.draining)
                  .map((n) => new URL(n.http_url).origin);
                if (listed.length) nodes = listed;
                return;
              } catch (error) { /* lost or not in a cluster: ask the next one */ }
            }
          }

          // Our node is lost: close both connections and join the next node of the cluster.
          async function moveOn(pc) {
            if (left || moving || !connections.includes(pc)) return;
            moving = true;
            const before = await stats().catch(() => null);
            if (before) carried = { framesDecoded: before.framesDecoded, audioSamplesReceived: before.audioSamplesReceived };
            for (const old of connections.splice(0)) old.close();
            subscriber = null;
            // End the old sessions if their node still answers (a draining node waits for them to leave).
            for (const url of resources.splice(0)) {
              fetch(url, { method: "DELETE", headers: headers(), keepalive: true }).catch(() => {});
            }
            for (const figure of document.querySelectorAll("figure.remote, audio")) figure.remove();
            const lost = node;
            for (let attempt = 0; !left; attempt++) {
              await listNodes();
              const others = nodes.filter((n) => n !== lost);
              const candidates = others.length ? others : [lost];
              node = candidates[attempt % candidates.length];
              status("node lost: joining " + node);
              try {
                if (publishing) await publish();
                if (subscribing) await subscribe();
                moves++;
                break;
              } catch (error) {
                for (const old of connections.splice(0)) old.close();
                status("joining " + node + " failed: " + error.message);
                await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 250 << attempt)));
              }
            }
            moving = false;
            listNodes();
          }

          async function publish() {
            if (!localStream) {
              localStream = await navigator.mediaDevices.getUserMedia({
                audio: true, video: { width: 1280, height: 720 }
              });
              document.getElementById("local").srcObject = localStream;
            }
            const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
            connections.push(pc);
            watch(pc, "publish");
            for (const track of localStream.getAudioTracks()) {
              pc.addTransceiver(track, { direction: "sendonly", streams: [localStream] });
            }
            for (const track of localStream.getVideoTracks()) {
              pc.addTransceiver(track, {
                direction: "sendonly", streams: [localStream],
                // Simulcast, low to high: quarter, half and full resolution.
                sendEncodings: [
                  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150000 },
                  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500000 },
                  { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1500000 }
                ]
              });
            }
            await negotiate(pc, new URL(whipURL, node).href);
          }

          // The output track of the room's running function of `kind`, started if there is none yet.
          async function functionTrack(kind) {
            const url = new URL("/api/v1/rooms/{{ROOM}}/functions", node).href;
            const listed = await fetch(url, { headers: headers() });
            if (listed.ok) {
              const running = (await listed.json()).find((f) => f.kind === kind && f.state === "running");
              const output = running && running.outputs.find((o) => !o.listener);
              if (output) return output.track;
            }
            const request = kind === "audio-mix"
              ? { kind, inputs: "all-audio" }
              : { kind, inputs: "all-video", parameters: { width: 640, height: 360, frame_rate: 30 } };
            const response = await fetch(url, {
              method: "POST", headers: headers("application/json"), body: JSON.stringify(request)
            });
            const body = await response.text();
            if (response.status !== 201) throw new Error(kind + ": " + response.status + " " + body.trim());
            return JSON.parse(body).outputs.find((o) => !o.listener).track;
          }

          // Pre-allocated transceivers: the node fills them with the room's tracks as they come and go,
          // without renegotiation. With a view, only the functions' outputs.
          async function subscribe() {
            const tracks = [];
            for (const view of views) tracks.push(await functionTrack(view === "mix" ? "audio-mix" : "composite"));
            const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
            subscriber = pc;
            connections.push(pc);
            watch(pc, "play");
            pc.addTransceiver("audio", { direction: "recvonly" });
            for (let i = 0; i < 3; i++) pc.addTransceiver("video", { direction: "recvonly" });
            pc.addEventListener("track", (event) => {
              const stream = new MediaStream([event.track]);
              if (event.track.kind === "audio") {
                const audio = document.createElement("audio");
                audio.autoplay = true;
                audio.srcObject = stream;
                document.body.appendChild(audio);
                return;
              }
              const figure = document.createElement("figure");
              figure.className = "remote";
              const video = document.createElement("video");
              video.autoplay = true;
              video.muted = true;
              video.playsInline = true;
              video.srcObject = stream;
              const caption = document.createElement("figcaption");
              const label = views.length ? "view " + views.join(" + ") : "room track " + (event.transceiver.mid || "?");
              caption.textContent = label + ": waiting for media";
              video.addEventListener("resize", () => {
                caption.textContent = label + ": " + video.videoWidth + "x" + video.videoHeight;
              });
              figure.append(video, caption);
              document.getElementById("videos").appendChild(figure);
            });
            const query = tracks.length ? "?" + tracks.map((t) => "track=" + t).join("&") : "";
            await negotiate(pc, new URL(whepURL + query, node).href);
          }

          async function stats() {
            const result = {
              framesDecoded: carried.framesDecoded, audioSamplesReceived: carried.audioSamplesReceived,
              frameWidth: 0, frameHeight: 0, bytes: 0
            };
            if (!subscriber) return result;
            const report = await subscriber.getStats();
            report.forEach((entry) => {
              if (entry.type !== "inbound-rtp") return;
              result.bytes += entry.bytesReceived || 0;
              if (entry.kind === "video") {
                result.framesDecoded += entry.framesDecoded || 0;
                result.frameWidth = Math.max(result.frameWidth, entry.frameWidth || 0);
                result.frameHeight = Math.max(result.frameHeight, entry.frameHeight || 0);
              } else if (entry.kind === "audio") {
                result.audioSamplesReceived += entry.totalSamplesReceived || 0;
              }
            });
            return result;
          }

          let shownBytes = 0;
          let lastTime = performance.now();
          async function showStats() {
            const now = performance.now();
            const current = await stats();
            const kbps = Math.max(0, (current.bytes - shownBytes) * 8 / Math.max(1, now - lastTime));
            shownBytes = current.bytes;
            lastTime = now;
            document.getElementById("stats").textContent = "in " + kbps.toFixed(0) + " kbit/s, "
              + current.framesDecoded + " frames decoded, " + current.frameWidth + "x" + current.frameHeight
              + ", " + current.audioSamplesReceived + " audio samples";
          }

          async function leave() {
            if (left) return;
            left = true;
            clearInterval(timer);
            const pending = resources.splice(0).map((url) =>
              fetch(url, { method: "DELETE", headers: headers(), keepalive: true }).catch(() => {}));
            for (const pc of connections) pc.close();
            if (localStream) for (const track of localStream.getTracks()) track.stop();
            await Promise.all(pending);
            status("left");
          }

          window.braid = {
            stats: async () => {
              const { framesDecoded, audioSamplesReceived, frameWidth, frameHeight } = await stats();
              return { framesDecoded, audioSamplesReceived, frameWidth, frameHeight };
            },
            leave,
            node: () => node,
            moves: () => moves
          };
          document.getElementById("leave").addEventListener("click", leave);
          window.addEventListener("pagehide", leave);
          const timer = setInterval(() => { showStats().catch(() => {}); }, 1000);
          setInterval(() => { if (!moving && !left) listNodes(); }, 15000);

          // The browser reports a lost node only after seconds: media that stops for a second while the node
          // does not answer at all (no-cors: any answer counts) is noticed sooner.
          let lastBytes = 0;
          let stalledSince = null;
          async function checkNode() {
            if (!subscriber || moving || left) return;
            const pc = subscriber;
            const { bytes } = await stats();
            if (bytes > lastBytes || bytes === 0) {
              lastBytes = bytes;
              stalledSince = null;
              return;
            }
            stalledSince = stalledSince ?? performance.now();
            if (performance.now() - stalledSince < 1000) return;
            try {
              await fetch(new URL("/healthz", node), { mode: "no-cors", signal: AbortSignal.timeout(500) });
              stalledSince = performance.now();
            } catch (error) {
              lastBytes = 0;
              stalledSince = null;
              moveOn(pc);
            }
          }
          setInterval(() => { checkNode().catch(() => {}); }, 250);

          (async () => {
            try {
              if (publishing) await publish();
              if (subscribing) await subscribe();
              status("negotiated" + (publishing ? " publish" : "") + (subscribing ? " play" : ""));
              listNodes();
            } catch (error) {
              status("error: " + error.message);
            }
          })();
        })();
        </script>
        </body>
        </html>
        """#
}
