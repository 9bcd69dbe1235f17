/// A node of the mesh, by the same raw value as BraidSFU's `NodeID.rawValue`.
///
/// A plain integer rather than a wrapper: the scheduler keeps no dependency on the SFU module, and every
/// tie between equally good routes is broken by comparing these values, so that every node of the
/// cluster, computing from the same link state, picks the same trees.
public typealias MeshNodeID = UInt64

/// Where a node (or a client) is, as far as placement needs to know.
public struct MeshLocation: Sendable, Hashable {
    /// A region name (`"eu-west"`); two locations with the same name count as near each other.
    public var region: String?
    /// Degrees north, -90...90.
    public var latitude: Double?
    /// Degrees east, -180...180.
    public var longitude: Double?

    public init(region: String? = nil, latitude: Double? = nil, longitude: Double? = nil) {
        self.region = region
        self.latitude = latitude
        self.longitude = longitude
    }

    /// Both coordinates, when both are known.
    var coordinates: (latitude: Double, longitude: Double)? {
        guard let latitude, let longitude else { return nil }
        return (latitude, longitude)
    }
}

/// What the scheduler knows of a node besides its links.
public struct MeshNodeState: Sendable, Hashable {
    /// Fraction of the node's forwarding capacity in use, 0...1 (values above 1 count as 1).
    public var load: Double
    /// Where the node runs.
    public var location: MeshLocation
    /// False once the node is known dead: its links stay stored but carry nothing until it is alive again.
    public var isAlive: Bool
    /// True while the node is being emptied: no new clients, and transit only where there is no other way.
    public var isDraining: Bool

    public init(load: Double = 0, location: MeshLocation = .init(), isAlive: Bool = true, isDraining: Bool = false) {
        self.load = load
        self.location = location
        self.isAlive = isAlive
        self.isDraining = isDraining
    }
}

/// One probe round's view of a directed link: media flows from the link's `from` node to its `to` node.
public struct LinkMeasurement: Sendable, Hashable {
    /// Round-trip time, ms.
    public var rtt: Double
    /// Fraction of packets lost, 0...1.
    public var loss: Double
    /// Inter-arrival jitter, ms.
    public var jitter: Double
    /// Capacity left on the link, kbit/s, when the probe could estimate it.
    public var spareCapacity: Double?

    public init(rtt: Double, loss: Double = 0, jitter: Double = 0, spareCapacity: Double? = nil) {
        self.rtt = rtt
        self.loss = loss
        self.jitter = jitter
        self.spareCapacity = spareCapacity
    }
}
