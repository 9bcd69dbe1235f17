#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What is known of a client asking where to connect, and how to pick its node.
///
/// Each candidate gets an estimated one-way latency to the client plus the node's load penalty (the
/// same steep `L/(1 − L)` curve routes use) and, while draining, the draining penalty; the smallest
/// score wins, ties going to the smaller node id. The latency is, by preference:
///
/// 1. half the RTT the client measured to that node (when ``rtts`` is not empty, only nodes it measured
///    are considered; if none of them is usable, the location is used);
/// 2. from both latitudes/longitudes: great-circle distance at ``kilometresPerMillisecond`` of fibre,
///    times ``routeStretch``, plus ``baseLatency``;
/// 3. from region names: ``baseLatency`` in the same region, ``unknownLatency`` otherwise or when
///    nothing is known.
public struct ClientPlacement: Sendable, Hashable {
    /// RTTs the client measured to nodes (ms), e.g. from a probe before joining.
    public var rtts: [MeshNodeID: Double]
    /// Where the client says it is.
    public var location: MeshLocation
    /// Light in fibre covers about 200 km per ms.
    public var kilometresPerMillisecond: Double = 200
    /// Fibre routes are longer than great circles.
    public var routeStretch: Double = 1.5
    /// One-way latency inside a region or at zero distance (last mile), ms.
    public var baseLatency: Double = 5
    /// One-way latency assumed when nothing relates client and node, ms.
    public var unknownLatency: Double = 100

    public init(rtts: [MeshNodeID: Double] = [:], location: MeshLocation = .init()) {
        self.rtts = rtts
        self.location = location
    }

    /// The estimated one-way latency from the client to a node at `node`, ms, from location alone.
    public func estimatedLatency(to node: MeshLocation) -> Double {
        if let client = self.location.coordinates, let server = node.coordinates {
            let kilometres = Self.greatCircleKilometres(client, server)
            return self.baseLatency + kilometres * self.routeStretch / self.kilometresPerMillisecond
        }
        if let region = self.location.region, region == node.region { return self.baseLatency }
        return self.unknownLatency
    }

    /// The haversine distance between two points of a 6371 km sphere.
    public static func greatCircleKilometres(
        _ a: (latitude: Double, longitude: Double), _ b: (latitude: Double, longitude: Double)
    ) -> Double {
        let radians = Double.pi / 180
        let dLatitude = (b.latitude - a.latitude) * radians
        let dLongitude = (b.longitude - a.longitude) * radians
        let h =
            sin(dLatitude / 2) * sin(dLatitude / 2)
            + cos(a.latitude * radians) * cos(b.latitude * radians) * sin(dLongitude / 2) * sin(dLongitude / 2)
        return 2 * 6371 * asin(min(1, h.squareRoot()))
    }

    /// The best of `pool` (live nodes) for this client, or nil when the pool is empty.
    func choose(among pool: [(id: MeshNodeID, state: MeshNodeState)], policy: RoutePolicy) -> MeshNodeID? {
        let measured = pool.filter { self.rtts[$0.id] != nil }
        let useRTTs = !measured.isEmpty
        var best: (score: Double, id: MeshNodeID)?
        for (id, state) in useRTTs ? measured : pool {
            let latency = useRTTs ? self.rtts[id]! / 2 : self.estimatedLatency(to: state.location)
            let score = latency + policy.nodeCost(load: state.load, isDraining: state.isDraining)
            if let current = best, (current.score, current.id) <= (score, id) { continue }
            best = (score, id)
        }
        return best?.id
    }
}
