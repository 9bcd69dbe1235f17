public import NIOCore

// The packet paths hold packets in `ByteBuffer`s: these run a transform from one buffer into the writable
// end of another, so each caller does not repeat the pointer plumbing. Still no heap allocation when the
// destination already has the capacity (a reused scratch buffer).

extension SRTPOutboundSession {
    /// Protects the RTP (or, with `isRTCP`, RTCP) packet in `packet`'s readable bytes and appends the
    /// protected packet to `destination`, reserving room for the trailer. Returns its length.
    /// - Throws: see ``protectRTP(_:into:)`` and ``protectRTCP(_:into:)``; `destination` is then unchanged.
    public func protect(_ packet: ByteBuffer, isRTCP: Bool, appendingTo destination: inout ByteBuffer)
        throws(SRTPError) -> Int
    {
        let trailer = isRTCP ? self.profile.rtcpTrailerLength : self.profile.rtpTrailerLength
        return try transform(packet, room: packet.readableBytes + trailer, into: &destination) {
            (source, target) throws(SRTPError) in
            isRTCP ? try self.protectRTCP(source, into: target) : try self.protectRTP(source, into: target)
        }
    }
}

extension SRTPInboundSession {
    /// Verifies and decrypts the SRTP (or, with `isRTCP`, SRTCP) packet in `packet`'s readable bytes and
    /// appends the plain packet to `destination`. Returns its length.
    /// - Throws: see ``unprotectRTP(_:into:)`` and ``unprotectRTCP(_:into:)``; `destination` is then
    ///   unchanged.
    public func unprotect(_ packet: ByteBuffer, isRTCP: Bool, appendingTo destination: inout ByteBuffer)
        throws(SRTPError) -> Int
    {
        try transform(packet, room: packet.readableBytes, into: &destination) { (source, target) throws(SRTPError) in
            isRTCP ? try self.unprotectRTCP(source, into: target) : try self.unprotectRTP(source, into: target)
        }
    }
}

/// Runs `body` from `packet`'s readable bytes into at least `room` writable bytes of `destination` and moves
/// its writer index past what `body` wrote.
private func transform(
    _ packet: ByteBuffer,
    room: Int,
    into destination: inout ByteBuffer,
    _ body: (UnsafeRawBufferPointer, UnsafeMutableRawBufferPointer) throws(SRTPError) -> Int
) throws(SRTPError) -> Int {
    // The ByteBuffer closures rethrow untyped errors, so the typed result is carried out instead.
    let result: Result<Int, SRTPError> = packet.withUnsafeReadableBytes { source in
        var outcome: Result<Int, SRTPError> = .success(0)
        destination.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { target in
            do throws(SRTPError) {
                let written = try body(source, target)
                outcome = .success(written)
                return written
            } catch {
                outcome = .failure(error)
                return 0
            }
        }
        return outcome
    }
    return try result.get()
}
