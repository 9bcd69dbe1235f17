/// Which of a subscriber's tracks each known SSRC (media, RTX, FEC repair) belongs to: the lookup every
/// received packet makes first.
///
/// Stored inline in the subscriber (no buffer of its own), so that among hundreds of subscribers a
/// packet's lookup reads memory the subscriber's object already brought into the cache, instead of
/// each track object in turn until one matches. Rebuilt from the tracks whenever their SSRCs change (a
/// track binds an SSRC, a failover restarts them); the tracks stay the source of truth. Holds the first
/// ``capacity`` SSRCs; a packet whose SSRC is not held goes the slow way through the tracks.
struct TrackRoutes {
    static let capacity = 12

    private var ssrcs = InlineArray<12, UInt32>(repeating: 0)
    private var trackIndices = InlineArray<12, UInt8>(repeating: 0)
    private(set) var count = 0

    /// The index of the track `ssrc` belongs to.
    func index(of ssrc: UInt32) -> Int? {
        var position = 0
        while position < self.count {
            if self.ssrcs[position] == ssrc { return Int(self.trackIndices[position]) }
            position += 1
        }
        return nil
    }

    /// Takes every SSRC of `tracks`, in track order (the first track naming an SSRC keeps it).
    mutating func rebuild(_ tracks: [IncomingTrack]) {
        self.count = 0
        for (index, track) in tracks.enumerated() where index <= Int(UInt8.max) {
            for ssrc in [track.ssrc, track.rtxSSRC, track.fecSSRC] {
                guard let ssrc, self.count < Self.capacity, self.index(of: ssrc) == nil else { continue }
                self.ssrcs[self.count] = ssrc
                self.trackIndices[self.count] = UInt8(index)
                self.count += 1
            }
        }
    }
}
