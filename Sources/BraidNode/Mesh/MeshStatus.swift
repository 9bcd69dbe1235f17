import BraidCluster
import BraidMesh
import BraidSFU
import BraidScheduler
import Foundation
import NIOCore

/// The mesh as one node sees it: `GET /api/v1/mesh` and a section of the text dashboard.
public struct MeshStatus: Sendable, Codable, Equatable {
    /// A node of the cluster.
    public struct Node: Sendable, Codable, Equatable {
        public var id: String
        public var name: String
        public var region: String
        public var meshAddress: String
        public var httpURL: String
        public var sessions: Int
        public var draining: Bool

        enum CodingKeys: String, CodingKey {
            case id, name, region, sessions, draining
            case meshAddress = "mesh_address"
            case httpURL = "http_url"
        }
    }

    /// This node's relay link to another node, with its measurements and what crosses it.
    public struct Link: Sendable, Codable, Equatable {
        public var peer: String
        public var peerName: String
        public var up: Bool
        public var rttMs: Double?
        public var jitterMs: Double
        /// Loss of what this node sends, before repair, 0...1.
        public var loss: Double
        public var sendKbps: Double
        public var datagramsSent: Int
        public var datagramsReceived: Int
        public var retransmissionsSent: Int
        public var repaired: Int
        public var unrepaired: Int
        /// FEC repair datagrams sent to the peer, and datagrams from it rebuilt from its repairs.
        public var repairsSent: Int
        public var recoveredByFEC: Int
        /// NACKs from the peer answered with a round of fresh repairs instead of retransmissions.
        public var repairRounds: Int
        public var rejected: Int
        public var downs: Int
        /// Tracks this node relays to the peer (one copy each), with the layers pulled.
        public var relayed: [String]
        /// Tracks this node pulls from the peer.
        public var pulled: [String]

        enum CodingKeys: String, CodingKey {
            case peer, up, loss, relayed, pulled, repaired, unrepaired, rejected, downs
            case peerName = "peer_name"
            case rttMs = "rtt_ms"
            case jitterMs = "jitter_ms"
            case sendKbps = "send_kbps"
            case datagramsSent = "datagrams_sent"
            case datagramsReceived = "datagrams_received"
            case retransmissionsSent = "retransmissions_sent"
            case repairsSent = "repairs_sent"
            case recoveredByFEC = "recovered_by_fec"
            case repairRounds = "repair_rounds"
        }
    }

    /// A remote track mirrored here: its path from the origin and who consumes it on this node.
    public struct RemoteTrack: Sendable, Codable, Equatable {
        public var id: String
        public var room: String
        /// Node names from the origin to this node, as the scheduler routes it (empty: no route).
        public var path: [String]
        /// The peer it is pulled from now (nil: not mirrored, or its link went away).
        public var pulledFrom: String?
        public var consumers: Int

        enum CodingKeys: String, CodingKey {
            case id, room, path, consumers
            case pulledFrom = "pulled_from"
        }
    }

    /// A directed link as this node's scheduler routes on it: its own links as measured, the other
    /// nodes' links as they reported them through the cluster store (about once a second).
    public struct GraphLink: Sendable, Codable, Equatable {
        public var from: String
        public var to: String
        public var rttMs: Double
        public var loss: Double
        /// The weight routes use now, in ms after hysteresis (nil: the edge carries nothing).
        public var weight: Int?

        enum CodingKeys: String, CodingKey {
            case from, to, loss, weight
            case rttMs = "rtt_ms"
        }
    }

    public var node: String
    public var leader: String?
    public var isLeader: Bool
    /// `healthy`, or `degraded: reason` while the cluster store cannot be reached.
    public var store: String
    public var nodes: [Node]
    public var links: [Link]
    public var remoteTracks: [RemoteTrack]
    public var graph: [GraphLink]
    public var reroutes: Int
    public var unknownSenders: Int

    enum CodingKeys: String, CodingKey {
        case node, leader, store, nodes, links, graph, reroutes
        case isLeader = "is_leader"
        case remoteTracks = "remote_tracks"
        case unknownSenders = "unknown_senders"
    }

    /// A few lines for the text dashboard.
    public func renderText() -> String {
        var lines = ["mesh: node \(self.node), leader \(self.leader ?? "none")\(self.isLeader ? " (this node)" : ""), store \(self.store)"]
        for link in self.links {
            let rtt = link.rttMs.map { String(format: "%.1f ms", $0) } ?? "-"
            lines.append(
                "  link → \(link.peerName): \(link.up ? "up" : "DOWN"), rtt \(rtt), loss \(String(format: "%.1f", link.loss * 100)) %, "
                    + "\(Int(link.sendKbps)) kbit/s, relays \(link.relayed.count), pulls \(link.pulled.count)"
                    + (link.repairsSent + link.recoveredByFEC > 0
                        ? ", fec sent \(link.repairsSent) (rounds \(link.repairRounds)) rebuilt \(link.recoveredByFEC)" : ""))
        }
        for track in self.remoteTracks {
            lines.append("  track \(track.id) [\(track.room)] via \(track.path.joined(separator: " → ")), consumers \(track.consumers)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension MeshForwarder {
    func status(now: NIODeadline) -> MeshStatus {
        let names = Dictionary(self.nodes.map { ($0.key.rawValue, $0.value.name) }, uniquingKeysWith: { a, _ in a })
        func name(_ id: UInt64) -> String { names[id] ?? NodeID(rawValue: id).description }
        let nodes = self.nodes.values.sorted { $0.id < $1.id }.map { record in
            MeshStatus.Node(
                id: NodeID(rawValue: record.id).description, name: record.name, region: record.region,
                meshAddress: record.meshAddress, httpURL: record.httpURL, sessions: record.load.sessions,
                draining: record.draining)
        }
        let links = self.peers.values.sorted { $0.id < $1.id }.map { peer in
            let m = peer.link.measurements
            let c = peer.link.counters
            return MeshStatus.Link(
                peer: peer.id.description, peerName: peer.name, up: peer.link.isUp,
                rttMs: m.rtt.map { Double($0.nanoseconds) / 1e6 }, jitterMs: Double(m.jitter.nanoseconds) / 1e6,
                loss: m.loss, sendKbps: m.sendRateKbps, datagramsSent: c.datagramsSent,
                datagramsReceived: c.datagramsReceived, retransmissionsSent: c.retransmissionsSent,
                repaired: c.repaired, unrepaired: c.unrepaired, repairsSent: c.repairsSent,
                recoveredByFEC: c.recoveredByFEC, repairRounds: c.repairRounds, rejected: c.rejected, downs: c.downs,
                relayed: peer.routerLink.relayedTracks.map { "\($0.id)" }, pulled: peer.routerLink.mirroredTracks.map(\.description))
        }
        let tracks = self.remoteTracks.values.sorted { $0.id < $1.id }.map { announcement in
            let producer = self.router.track(announcement.id)
            let path = self.scheduler.path(from: announcement.id.origin.rawValue, to: self.node.rawValue)?.nodes.map(name) ?? []
            let upstream = self.router.upstreamLink(of: announcement.id)
            let peer = self.peers.values.first { $0.routerLink === upstream }
            return MeshStatus.RemoteTrack(
                id: announcement.id.description, room: announcement.room, path: path, pulledFrom: peer?.name,
                consumers: producer?.consumers.count ?? 0)
        }
        let known = self.scheduler.nodes
        let graph = known.flatMap { from in
            known.compactMap { to -> MeshStatus.GraphLink? in
                guard from != to, let m = self.scheduler.measurement(from: from, to: to) else { return nil }
                return MeshStatus.GraphLink(
                    from: name(from), to: name(to), rttMs: m.rtt, loss: m.loss, weight: self.scheduler.weight(from: from, to: to))
            }
        }
        return MeshStatus(
            node: self.node.description, leader: self.leader.map(name), isLeader: false, store: "healthy", nodes: nodes,
            links: links, remoteTracks: tracks, graph: graph, reroutes: self.counters.reroutes, unknownSenders: self.counters.unknownSenders)
    }
}
