/// Identifies a node of the network: the origin part of every ``TrackID`` it mints.
///
/// A 64-bit value rather than a name so that a ``TrackID`` is a plain value of 12 bytes, carried with
/// every packet inside the node at no reference-counting cost. A node derives it from its configured
/// name (``init(name:)``), so every node of a cluster agrees on it without a registry round trip.
public struct NodeID: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    /// The raw value.
    public var rawValue: UInt64

    /// A node id from its raw value.
    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    /// A stable id for a node name: 64-bit FNV-1a of its UTF-8 bytes (stable across processes and
    /// platforms, unlike `Hasher`).
    public init(name: String) {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        self.rawValue = hash
    }

    /// The id a router uses when no node name is configured.
    public static let local = NodeID(name: "local")

    /// 16 hex digits.
    public var description: String {
        let digits = String(self.rawValue, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = UInt64(text, radix: 16) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a node id"))
        }
        self.rawValue = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.description)
    }
}

/// Names a track everywhere in the network: the node where it entered the network (its origin) and the
/// number that node gave it. A relay, an edge function or a subscriber on another node refers to the
/// same track by the same id; the id never changes while the track lives.
///
/// Written `origin/number` (for example `9f2c3a1b00d4e7f2/17`) in logs, JSON and URLs.
public struct TrackID: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    /// The node where the track was published.
    public var origin: NodeID
    /// The track's number on its origin node, unique there for the node's lifetime.
    public var number: UInt32

    /// A track id.
    public init(origin: NodeID, number: UInt32) {
        self.origin = origin
        self.number = number
    }

    /// Parses `origin/number`; nil when malformed.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 16, let origin = UInt64(parts[0], radix: 16),
            let number = UInt32(parts[1])
        else { return nil }
        self.init(origin: NodeID(rawValue: origin), number: number)
    }

    public var description: String { "\(self.origin)/\(self.number)" }

    public static func < (lhs: TrackID, rhs: TrackID) -> Bool {
        (lhs.origin, lhs.number) < (rhs.origin, rhs.number)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = TrackID(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a track id"))
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.description)
    }
}
