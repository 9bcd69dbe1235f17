import BraidWire
import CoreMetrics
import Metrics
import NIOConcurrencyHelpers
import Prometheus

/// The node's Prometheus metrics, kept with swift-metrics in a registry of the node's own.
///
/// Media counters live on the socket's event loop as plain integers (see ``MediaChannelHandler``); they
/// are exported **on scrape**: `GET /metrics` takes a ``MediaTrafficSnapshot`` on the loop and adds the
/// difference since the previous scrape to each Prometheus counter, under a lock so two concurrent
/// scrapes never add the same packets twice. A scrape therefore shows the exact counts of that moment,
/// and the packet path never touches a metrics object. Gauges (memory, uptime) are set at the same time.
///
/// Each node has its own ``registry`` so several nodes can run in one process (tests);
/// ``bootstrapMetricsSystem()`` makes it the process-wide swift-metrics backend for the real daemon.
public final class NodeMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    private struct KindCounters {
        var packets: [DatagramKind: CoreMetrics.Counter]
        var bytes: [DatagramKind: CoreMetrics.Counter]
    }

    private let receivedCounters: KindCounters
    private let sentCounters: KindCounters
    private let drops: [MediaDropReason: CoreMetrics.Counter]
    private let receiveErrors: CoreMetrics.Counter
    private let coalescedReads: CoreMetrics.Counter
    private let cpuSeconds: CoreMetrics.FloatingPointCounter
    private let residentMemory: CoreMetrics.Gauge
    private let uptime: CoreMetrics.Gauge
    private let info: CoreMetrics.Gauge
    private let rooms: CoreMetrics.Gauge
    private let publishers: CoreMetrics.Gauge
    private let subscribers: CoreMetrics.Gauge
    private let sessions: CoreMetrics.Gauge
    /// What the node sent to its peers (`kind` = `rtp` or `rtcp`), SRTP-protected sizes.
    private let forwardedPackets: [String: CoreMetrics.Counter]
    private let forwardedBytes: [String: CoreMetrics.Counter]
    private let forwardingDrops: CoreMetrics.Counter
    /// New sessions and offers refused by a limit (`limit` = `sessions`, `sessions_per_address`,
    /// `sessions_per_room`, `transceivers_per_offer`).
    private let limitRefusals: [String: CoreMetrics.Counter]
    private let handshakeTimeouts: CoreMetrics.Counter
    private let outboundQueueDrops: CoreMetrics.Counter
    private let handshaking: CoreMetrics.Gauge

    private struct Published {
        var traffic = MediaTrafficSnapshot()
        var cpuSeconds = 0.0
        var sent = WebRTCSendCounters()
        var limits = WebRTCLimitCounters()
        /// Per media event loop: its metrics (made when the loop first appears) and last published values.
        var eventLoops: [Int: (metrics: EventLoopMetrics, last: WebRTCEventLoopStatus)] = [:]
        /// Per mesh peer (by name): its link metrics and last published values.
        var meshLinks: [String: (metrics: MeshLinkMetrics, last: MeshStatus.Link)] = [:]
    }

    /// `peer`-labelled metrics of one relay link.
    private struct MeshLinkMetrics {
        var up: CoreMetrics.Gauge
        var rtt: CoreMetrics.Gauge
        var loss: CoreMetrics.Gauge
        var sentDatagrams: CoreMetrics.Counter
        var receivedDatagrams: CoreMetrics.Counter
        var retransmissions: CoreMetrics.Counter
        var repairs: CoreMetrics.Counter
        var recoveredByFEC: CoreMetrics.Counter
        var rejected: CoreMetrics.Counter
        var relayedTracks: CoreMetrics.Gauge
    }

    /// `loop`-labelled metrics of one media event loop.
    private struct EventLoopMetrics {
        var sessions: CoreMetrics.Gauge
        var handedOffIn: CoreMetrics.Counter
        var relayedOut: CoreMetrics.Counter
        var relayedIn: CoreMetrics.Counter
    }

    private let published = NIOLockedValueBox(Published())

    private static let bootstrapped = NIOLockedValueBox(false)

    /// Creates the node's metrics in a new registry.
    public init(nodeID: String) {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        self.registry = registry
        self.factory = factory

        func counters(_ direction: String) -> KindCounters {
            var packets: [DatagramKind: CoreMetrics.Counter] = [:]
            var bytes: [DatagramKind: CoreMetrics.Counter] = [:]
            for kind in DatagramKind.allCases {
                let labels = [("kind", NodeStatus.kindLabel(kind))]
                packets[kind] = CoreMetrics.Counter(
                    label: "braid_media_packets_\(direction)_total",
                    dimensions: labels,
                    factory: factory
                )
                bytes[kind] = CoreMetrics.Counter(
                    label: "braid_media_bytes_\(direction)_total",
                    dimensions: labels,
                    factory: factory
                )
            }
            return KindCounters(packets: packets, bytes: bytes)
        }
        self.receivedCounters = counters("received")
        self.sentCounters = counters("sent")
        var drops: [MediaDropReason: CoreMetrics.Counter] = [:]
        for reason in MediaDropReason.allCases {
            drops[reason] = CoreMetrics.Counter(
                label: "braid_media_drops_total",
                dimensions: [("reason", reason.rawValue)],
                factory: factory
            )
        }
        self.drops = drops
        self.receiveErrors = CoreMetrics.Counter(label: "braid_media_receive_errors_total", factory: factory)
        self.coalescedReads = CoreMetrics.Counter(label: "braid_media_gro_reads_split_total", factory: factory)
        self.cpuSeconds = CoreMetrics.FloatingPointCounter(label: "braid_process_cpu_seconds_total", factory: factory)
        self.residentMemory = CoreMetrics.Gauge(label: "braid_process_resident_memory_bytes", factory: factory)
        self.uptime = CoreMetrics.Gauge(label: "braid_uptime_seconds", factory: factory)
        self.info = CoreMetrics.Gauge(
            label: "braid_node_info",
            dimensions: [("node_id", nodeID), ("version", BraidNodeVersion.string)],
            factory: factory
        )
        self.info.record(1)
        self.rooms = CoreMetrics.Gauge(label: "braid_rooms", factory: factory)
        self.publishers = CoreMetrics.Gauge(label: "braid_publishers", factory: factory)
        self.subscribers = CoreMetrics.Gauge(label: "braid_subscribers", factory: factory)
        self.sessions = CoreMetrics.Gauge(label: "braid_sessions", factory: factory)
        var forwardedPackets: [String: CoreMetrics.Counter] = [:]
        var forwardedBytes: [String: CoreMetrics.Counter] = [:]
        for kind in ["rtp", "rtcp"] {
            forwardedPackets[kind] = CoreMetrics.Counter(
                label: "braid_forwarded_packets_total",
                dimensions: [("kind", kind)],
                factory: factory
            )
            forwardedBytes[kind] = CoreMetrics.Counter(
                label: "braid_forwarded_bytes_total",
                dimensions: [("kind", kind)],
                factory: factory
            )
        }
        self.forwardedPackets = forwardedPackets
        self.forwardedBytes = forwardedBytes
        self.forwardingDrops = CoreMetrics.Counter(label: "braid_forwarding_drops_total", factory: factory)
        var limitRefusals: [String: CoreMetrics.Counter] = [:]
        for limit in ["sessions", "sessions_per_address", "sessions_per_room", "transceivers_per_offer"] {
            limitRefusals[limit] = CoreMetrics.Counter(
                label: "braid_limit_refusals_total", dimensions: [("limit", limit)], factory: factory)
        }
        self.limitRefusals = limitRefusals
        self.handshakeTimeouts = CoreMetrics.Counter(label: "braid_handshake_timeouts_total", factory: factory)
        self.outboundQueueDrops = CoreMetrics.Counter(label: "braid_outbound_queue_drops_total", factory: factory)
        self.handshaking = CoreMetrics.Gauge(label: "braid_sessions_handshaking", factory: factory)
    }

    /// Makes this node's registry the backend of the process-wide `MetricsSystem`, so metrics that other
    /// libraries emit through swift-metrics land on the same `/metrics` page.
    ///
    /// `MetricsSystem.bootstrap` may run once per process; later calls here are ignored and return `false`.
    @discardableResult
    public func bootstrapMetricsSystem() -> Bool {
        Self.bootstrapped.withLockedValue { done in
            guard !done else { return false }
            MetricsSystem.bootstrap(self.factory)
            done = true
            return true
        }
    }

    /// Brings every metric up to date with `status` and `traffic` (see the type's discussion).
    public func publish(status: NodeStatus, traffic: MediaTrafficSnapshot) {
        self.published.withLockedValue { published in
            let previous = published.traffic
            for kind in DatagramKind.allCases {
                let (received, sent) = (traffic.received[kind], traffic.sent[kind])
                let (receivedBefore, sentBefore) = (previous.received[kind], previous.sent[kind])
                Self.add(received.packets, receivedBefore.packets, to: self.receivedCounters.packets[kind])
                Self.add(received.bytes, receivedBefore.bytes, to: self.receivedCounters.bytes[kind])
                Self.add(sent.packets, sentBefore.packets, to: self.sentCounters.packets[kind])
                Self.add(sent.bytes, sentBefore.bytes, to: self.sentCounters.bytes[kind])
            }
            for reason in MediaDropReason.allCases {
                Self.add(traffic.drops[reason], previous.drops[reason], to: self.drops[reason])
            }
            Self.add(traffic.receiveErrors, previous.receiveErrors, to: self.receiveErrors)
            Self.add(traffic.coalescedReads, previous.coalescedReads, to: self.coalescedReads)
            published.traffic = traffic

            let cpu = status.process.cpuSecondsTotal
            if cpu > published.cpuSeconds {
                self.cpuSeconds.increment(by: cpu - published.cpuSeconds)
                published.cpuSeconds = cpu
            }
            self.residentMemory.record(Double(status.process.residentMemoryBytes))
            self.uptime.record(status.uptimeSeconds)

            self.rooms.record(status.forwarding.rooms)
            self.publishers.record(status.forwarding.publishers)
            self.subscribers.record(status.forwarding.subscribers)
            self.sessions.record(status.sessions.count)
            let sent = status.forwarding.sent
            let sentBefore = published.sent
            Self.add(sent.rtpSent.packets, sentBefore.rtpSent.packets, to: self.forwardedPackets["rtp"])
            Self.add(sent.rtpSent.bytes, sentBefore.rtpSent.bytes, to: self.forwardedBytes["rtp"])
            Self.add(sent.rtcpSent.packets, sentBefore.rtcpSent.packets, to: self.forwardedPackets["rtcp"])
            Self.add(sent.rtcpSent.bytes, sentBefore.rtcpSent.bytes, to: self.forwardedBytes["rtcp"])
            Self.add(sent.dropped, sentBefore.dropped, to: self.forwardingDrops)
            published.sent = sent

            let limits = status.limits.counters
            let limitsBefore = published.limits
            Self.add(limits.refusedSessions, limitsBefore.refusedSessions, to: self.limitRefusals["sessions"])
            Self.add(
                limits.refusedPerAddress, limitsBefore.refusedPerAddress, to: self.limitRefusals["sessions_per_address"])
            Self.add(limits.refusedPerRoom, limitsBefore.refusedPerRoom, to: self.limitRefusals["sessions_per_room"])
            Self.add(
                limits.refusedTransceivers, limitsBefore.refusedTransceivers,
                to: self.limitRefusals["transceivers_per_offer"])
            Self.add(limits.handshakeTimeouts, limitsBefore.handshakeTimeouts, to: self.handshakeTimeouts)
            Self.add(limits.outboundQueueDropped, limitsBefore.outboundQueueDropped, to: self.outboundQueueDrops)
            self.handshaking.record(limits.handshaking)
            published.limits = limits

            for loop in status.forwarding.eventLoops ?? [] {
                let entry =
                    published.eventLoops[loop.index]
                    ?? (self.makeEventLoopMetrics(loop.index), WebRTCEventLoopStatus(index: loop.index))
                entry.metrics.sessions.record(loop.sessions)
                Self.add(loop.handedOffIn, entry.last.handedOffIn, to: entry.metrics.handedOffIn)
                Self.add(loop.relayedOut, entry.last.relayedOut, to: entry.metrics.relayedOut)
                Self.add(loop.relayedIn, entry.last.relayedIn, to: entry.metrics.relayedIn)
                published.eventLoops[loop.index] = (entry.metrics, loop)
            }
        }
    }

    /// Brings the relay-link metrics up to date with the mesh status (a node in a cluster).
    public func publish(mesh: MeshStatus) {
        self.published.withLockedValue { published in
            for link in mesh.links {
                let entry = published.meshLinks[link.peerName] ?? (self.makeMeshLinkMetrics(link.peerName), Self.zero(link))
                entry.metrics.up.record(link.up ? 1 : 0)
                entry.metrics.rtt.record((link.rttMs ?? 0) / 1000)
                entry.metrics.loss.record(link.loss)
                entry.metrics.relayedTracks.record(link.relayed.count)
                Self.add(UInt64(link.datagramsSent), UInt64(entry.last.datagramsSent), to: entry.metrics.sentDatagrams)
                Self.add(
                    UInt64(link.datagramsReceived), UInt64(entry.last.datagramsReceived), to: entry.metrics.receivedDatagrams)
                Self.add(
                    UInt64(link.retransmissionsSent), UInt64(entry.last.retransmissionsSent),
                    to: entry.metrics.retransmissions)
                Self.add(UInt64(link.repairsSent), UInt64(entry.last.repairsSent), to: entry.metrics.repairs)
                Self.add(UInt64(link.recoveredByFEC), UInt64(entry.last.recoveredByFEC), to: entry.metrics.recoveredByFEC)
                Self.add(UInt64(link.rejected), UInt64(entry.last.rejected), to: entry.metrics.rejected)
                published.meshLinks[link.peerName] = (entry.metrics, link)
            }
        }
    }

    private static func zero(_ link: MeshStatus.Link) -> MeshStatus.Link {
        var zero = link
        zero.datagramsSent = 0
        zero.datagramsReceived = 0
        zero.retransmissionsSent = 0
        zero.repairsSent = 0
        zero.recoveredByFEC = 0
        zero.rejected = 0
        return zero
    }

    private func makeMeshLinkMetrics(_ peer: String) -> MeshLinkMetrics {
        let labels = [("peer", peer)]
        func gauge(_ label: String) -> CoreMetrics.Gauge {
            CoreMetrics.Gauge(label: label, dimensions: labels, factory: self.factory)
        }
        func counter(_ label: String) -> CoreMetrics.Counter {
            CoreMetrics.Counter(label: label, dimensions: labels, factory: self.factory)
        }
        return MeshLinkMetrics(
            up: gauge("braid_mesh_link_up"), rtt: gauge("braid_mesh_link_rtt_seconds"),
            loss: gauge("braid_mesh_link_loss_ratio"), sentDatagrams: counter("braid_mesh_link_sent_datagrams_total"),
            receivedDatagrams: counter("braid_mesh_link_received_datagrams_total"),
            retransmissions: counter("braid_mesh_link_retransmissions_total"),
            repairs: counter("braid_mesh_link_fec_repairs_total"),
            recoveredByFEC: counter("braid_mesh_link_fec_recovered_datagrams_total"),
            rejected: counter("braid_mesh_link_rejected_datagrams_total"),
            relayedTracks: gauge("braid_mesh_link_relayed_tracks"))
    }

    private func makeEventLoopMetrics(_ index: Int) -> EventLoopMetrics {
        let labels = [("loop", String(index))]
        return EventLoopMetrics(
            sessions: CoreMetrics.Gauge(label: "braid_event_loop_sessions", dimensions: labels, factory: self.factory),
            handedOffIn: CoreMetrics.Counter(
                label: "braid_event_loop_handed_off_datagrams_total", dimensions: labels, factory: self.factory),
            relayedOut: CoreMetrics.Counter(
                label: "braid_event_loop_relayed_packets_out_total", dimensions: labels, factory: self.factory),
            relayedIn: CoreMetrics.Counter(
                label: "braid_event_loop_relayed_packets_in_total", dimensions: labels, factory: self.factory))
    }

    /// The registry in Prometheus text exposition format 0.0.4.
    public func exposition() -> [UInt8] {
        self.registry.emitToBuffer()
    }

    /// Adds `current - previous` to a counter. Snapshots only grow; a smaller value (a counter that
    /// wrapped after 2^64) is skipped rather than trapping.
    private static func add(_ current: UInt64, _ previous: UInt64, to counter: CoreMetrics.Counter?) {
        guard let counter, current > previous else { return }
        var delta = current - previous
        // Counter.increment takes Int64; feed very large deltas in pieces.
        while delta > 0 {
            let step = min(delta, UInt64(Int64.max))
            counter.increment(by: Int64(step))
            delta -= step
        }
    }
}
