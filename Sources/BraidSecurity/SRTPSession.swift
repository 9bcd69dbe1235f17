internal import CBraidShims

/// Which implementation runs a session's packets.
///
/// Not part of the public API: sessions run ``openSSL``; tests and benchmarks reach the libsrtp2 reference
/// through `@_spi(SRTPReference) import BraidSecurity` to compare the two packet by packet.
@_spi(SRTPReference)
public enum SRTPImplementation: Hashable, Sendable, CaseIterable {
    /// OpenSSL's EVP API, with cipher contexts made once per session and no heap allocation per packet
    /// (the default).
    case openSSL
    /// Debian's libsrtp2 (built on NSS), the reference the OpenSSL implementation is checked against.
    case libsrtp
}

/// One direction's implementation: exactly one of the two is set. Two optional `let`s rather than an enum
/// with payloads, meant to let the packet path read the object without retaining it; the release build
/// (Swift 6.3) still retains and releases the transform around each call, about 1.5 % of the node's CPU
/// in a 300-subscriber webinar profile (Benchmarks/README.md).
struct SRTPBackend {
    let openSSL: SRTPTransform?
    let libsrtp: LibSRTPBackend?

    init(
        _ implementation: SRTPImplementation,
        profile: SRTPProfile,
        masterKey: SRTPMasterKey,
        sending: Bool,
        replayWindowSize: Int,
        allowRepeatTransmission: Bool
    ) throws(SRTPError) {
        switch implementation {
        case .openSSL:
            self.openSSL = try SRTPTransform(
                profile: profile,
                masterKey: masterKey,
                sending: sending,
                replayWindowSize: replayWindowSize,
                allowRepeatTransmission: allowRepeatTransmission
            )
            self.libsrtp = nil
        case .libsrtp:
            self.openSSL = nil
            self.libsrtp = try LibSRTPBackend(
                profile: profile,
                masterKey: masterKey,
                inbound: !sending,
                replayWindowSize: replayWindowSize,
                allowRepeatTransmission: allowRepeatTransmission
            )
        }
    }

    var profile: SRTPProfile { self.openSSL?.profile ?? self.libsrtp!.profile }

    var implementation: SRTPImplementation { self.openSSL != nil ? .openSSL : .libsrtp }

    /// Runs `operation` on whichever implementation this is.
    @inline(__always)
    func run(
        _ operation: SRTPOperation,
        _ packet: UnsafeRawBufferPointer,
        _ destination: UnsafeMutableRawBufferPointer
    ) throws(SRTPError) -> Int {
        if let transform = self.openSSL {
            switch operation {
            case .protectRTP: return try transform.protectRTP(packet, into: destination)
            case .protectRTCP: return try transform.protectRTCP(packet, into: destination)
            case .unprotectRTP: return try transform.unprotectRTP(packet, into: destination)
            case .unprotectRTCP: return try transform.unprotectRTCP(packet, into: destination)
            }
        }
        return try self.libsrtp!.transform(operation, packet, into: destination)
    }
}

/// Protects the RTP and RTCP this side sends, from every SSRC it sends (libsrtp's `ssrc_any_outbound`).
///
/// Runs on OpenSSL (see `SRTPTransform` for the packet formats and the RFC sections): the cipher contexts
/// are made when the session is, and protecting a packet allocates nothing. Each SSRC gets its own
/// rollover counter, estimated from the sequence numbers it is handed (RFC 3711 §3.3.1), and its own
/// SRTCP index, starting at 1.
///
/// Not thread-safe: the per-SSRC counters live in the session, so use one instance from one event loop.
/// Protection never touches the caller's source buffer: the packet is written, encrypted, into the
/// caller's destination, so one plaintext packet can be fanned out to many sessions.
public final class SRTPOutboundSession {
    private let backend: SRTPBackend

    /// The profile this session runs.
    public var profile: SRTPProfile { self.backend.profile }

    /// The implementation this session runs.
    @_spi(SRTPReference)
    public var implementation: SRTPImplementation { self.backend.implementation }

    /// Creates an outbound session.
    /// - Parameters:
    ///   - profile: the negotiated profile.
    ///   - masterKey: this side's master key and salt.
    ///   - allowRepeatTransmission: let the same sequence number be protected twice, as a NACK answered
    ///     without RTX does (libsrtp `allow_repeat_tx`). The payload must then be identical. Without it a
    ///     second protection of an index throws ``SRTPError/Code/replayed``; either way an index older than
    ///     the last 128 of its SSRC throws ``SRTPError/Code/replayTooOld``.
    /// - Throws: ``SRTPError`` (``SRTPError/Code/badKeyLength``, or ``SRTPError/Code/library`` when OpenSSL
    ///   cannot create a cipher context).
    public init(profile: SRTPProfile, masterKey: SRTPMasterKey, allowRepeatTransmission: Bool = true)
        throws(SRTPError)
    {
        self.backend = try SRTPBackend(
            .openSSL,
            profile: profile,
            masterKey: masterKey,
            sending: true,
            replayWindowSize: 128,
            allowRepeatTransmission: allowRepeatTransmission
        )
    }

    /// Creates an outbound session on a chosen implementation (tests and benchmarks).
    @_spi(SRTPReference)
    public init(
        profile: SRTPProfile,
        masterKey: SRTPMasterKey,
        allowRepeatTransmission: Bool = true,
        implementation: SRTPImplementation
    ) throws(SRTPError) {
        self.backend = try SRTPBackend(
            implementation,
            profile: profile,
            masterKey: masterKey,
            sending: true,
            replayWindowSize: 128,
            allowRepeatTransmission: allowRepeatTransmission
        )
    }

    /// Protects one RTP packet into `destination` and returns the SRTP packet's length.
    ///
    /// `destination` needs `packet.count + profile.rtpTrailerLength` bytes; it may be the packet's own
    /// memory. No heap allocation (except the first time an SSRC is seen).
    /// - Throws: ``SRTPError/Code/bufferTooSmall``, ``SRTPError/Code/badParameter`` (shorter than an RTP
    ///   header, or CSRCs or header extension running past the end), ``SRTPError/Code/replayed`` /
    ///   ``SRTPError/Code/replayTooOld`` (see ``init(profile:masterKey:allowRepeatTransmission:)``).
    @inlinable
    public func protectRTP(
        _ packet: UnsafeRawBufferPointer,
        into destination: UnsafeMutableRawBufferPointer
    ) throws(SRTPError) -> Int {
        try self._transform(0, packet, destination)
    }

    /// Protects one RTCP compound packet into `destination` and returns the SRTCP packet's length.
    ///
    /// `destination` needs `packet.count + profile.rtcpTrailerLength` bytes. No heap allocation (except
    /// the first time an SSRC is seen). Every SRTCP packet is encrypted (E flag set).
    /// - Throws: ``SRTPError/Code/bufferTooSmall``, ``SRTPError/Code/badParameter`` (shorter than the
    ///   8-byte RTCP header), ``SRTPError/Code/library`` once an SSRC has sent 2^31 − 1 SRTCP packets.
    @inlinable
    public func protectRTCP(
        _ packet: UnsafeRawBufferPointer,
        into destination: UnsafeMutableRawBufferPointer
    ) throws(SRTPError) -> Int {
        try self._transform(1, packet, destination)
    }

    /// Prefetches what ``protectRTP(_:into:)`` reads, one pointer level per stage (0: the transform's
    /// object), for a node fanning one packet out to many sessions.
    public func prefetch(stage: Int) {
        guard let transform = self.backend.openSSL else { return }
        if stage == 0 {
            braid_prefetch(UnsafeRawPointer(Unmanaged.passUnretained(transform).toOpaque()))
        } else {
            transform.prefetch(stage: stage - 1)
        }
    }

    /// Implementation entry point shared by the inlinable wrappers (0 = RTP, 1 = RTCP).
    @usableFromInline
    internal func _transform(
        _ kind: Int,
        _ packet: UnsafeRawBufferPointer,
        _ destination: UnsafeMutableRawBufferPointer
    ) throws(SRTPError) -> Int {
        try self.backend.run(kind == 0 ? .protectRTP : .protectRTCP, packet, destination)
    }
}

/// Verifies and decrypts the SRTP and SRTCP the peer sends, from any SSRC (libsrtp's `ssrc_any_inbound`),
/// with replay protection.
///
/// Runs on OpenSSL (see `SRTPTransform`), allocation-free per packet. A packet from an SSRC not seen
/// before is accepted with a rollover counter of 0 and, once it authenticates, starts that SSRC's state:
/// its rollover counter, estimated from each sequence number against the highest index accepted
/// (RFC 3711 §3.3.1), its SRTP replay window of `replayWindowSize` packets (§3.3.2) and its SRTCP replay
/// window of 128 indices. Nothing is remembered of a packet that fails.
///
/// Not thread-safe; use one instance from one event loop.
public final class SRTPInboundSession {
    private let backend: SRTPBackend

    /// The profile this session runs.
    public var profile: SRTPProfile { self.backend.profile }

    /// The implementation this session runs.
    @_spi(SRTPReference)
    public var implementation: SRTPImplementation { self.backend.implementation }

    /// Creates an inbound session.
    /// - Parameters:
    ///   - profile: the negotiated profile.
    ///   - masterKey: the peer's master key and salt.
    ///   - replayWindowSize: SRTP replay window in packets, 64..<32768 (libsrtp's default is 128), rounded
    ///     up to a multiple of 32 as libsrtp does. SRTCP uses libsrtp's fixed window of 128 indices.
    /// - Throws: ``SRTPError`` (``SRTPError/Code/badKeyLength``, ``SRTPError/Code/badParameter`` for the
    ///   window, or ``SRTPError/Code/library`` when OpenSSL cannot create a cipher context).
    public init(profile: SRTPProfile, masterKey: SRTPMasterKey, replayWindowSize: Int = 128) throws(SRTPError) {
        self.backend = try SRTPBackend(
            .openSSL,
            profile: profile,
            masterKey: masterKey,
            sending: false,
            replayWindowSize: replayWindowSize,
            allowRepeatTransmission: false
        )
    }

    /// Creates an inbound session on a chosen implementation (tests and benchmarks).
    @_spi(SRTPReference)
    public init(
        profile: SRTPProfile,
        masterKey: SRTPMasterKey,
        replayWindowSize: Int = 128,
        implementation: SRTPImplementation
    ) throws(SRTPError) {
        self.backend = try SRTPBackend(
            implementation,
            profile: profile,
            masterKey: masterKey,
            sending: false,
            replayWindowSize: replayWindowSize,
            allowRepeatTransmission: false
        )
    }

    /// Verifies one SRTP packet and decrypts it into `destination`, and returns the RTP packet's length.
    /// `destination` needs `packet.count` bytes. No heap allocation (except the first time an SSRC
    /// authenticates). On error `destination`'s content is unspecified and the session is unchanged.
    /// - Throws: ``SRTPError/Code/authenticationFailed``, ``SRTPError/Code/replayed``,
    ///   ``SRTPError/Code/replayTooOld``, ``SRTPError/Code/badParameter`` (shorter than its header,
    ///   CSRCs, header extension and tag), ``SRTPError/Code/bufferTooSmall``.
    @inlinable
    public func unprotectRTP(
        _ packet: UnsafeRawBufferPointer,
        into destination: UnsafeMutableRawBufferPointer
    ) throws(SRTPError) -> Int {
        try self._transform(0, packet, destination)
    }

    /// Verifies one SRTCP packet and decrypts it into `destination`, and returns the RTCP packet's length.
    /// No heap allocation (except the first time an SSRC authenticates). An AEAD_AES_128_GCM packet with
    /// the E flag clear (tagged, not encrypted; RFC 7714 §9.3) is accepted; an AES-CM one is refused with
    /// ``SRTPError/Code/library``, as libsrtp does.
    /// - Throws: as ``unprotectRTP(_:into:)``, with ``SRTPError/Code/badParameter`` for a packet shorter
    ///   than its header and trailer.
    @inlinable
    public func unprotectRTCP(
        _ packet: UnsafeRawBufferPointer,
        into destination: UnsafeMutableRawBufferPointer
    ) throws(SRTPError) -> Int {
        try self._transform(1, packet, destination)
    }

    /// Verifies and decrypts an SRTP packet in a buffer the caller owns outright (a freshly received
    /// datagram), saving the copy. Returns the RTP packet's length; on error the buffer's content is
    /// unspecified.
    @inlinable
    public func unprotectRTP(inPlace packet: UnsafeMutableRawBufferPointer) throws(SRTPError) -> Int {
        try self._transform(0, UnsafeRawBufferPointer(packet), packet)
    }

    /// Verifies and decrypts an SRTCP packet in a buffer the caller owns outright. Returns the RTCP
    /// packet's length; on error the buffer's content is unspecified.
    @inlinable
    public func unprotectRTCP(inPlace packet: UnsafeMutableRawBufferPointer) throws(SRTPError) -> Int {
        try self._transform(1, UnsafeRawBufferPointer(packet), packet)
    }

    /// How many SSRCs have state (OpenSSL implementation only; tests).
    var streamCount: Int? {
        self.backend.openSSL?.streamCount
    }

    /// Implementation entry point shared by the inlinable wrappers (0 = RTP, 1 = RTCP).
    @usableFromInline
    internal func _transform(
        _ kind: Int,
        _ packet: UnsafeRawBufferPointer,
        _ destination: UnsafeMutableRawBufferPointer
    ) throws(SRTPError) -> Int {
        try self.backend.run(kind == 0 ? .unprotectRTP : .unprotectRTCP, packet, destination)
    }
}

/// Both directions of one SRTP association: what we send and what the peer sends.
///
/// Memory: about 5.6 KB per session with AEAD_AES_128_GCM and 4.6 KB with AES_CM_128_HMAC_SHA1_80, most
/// of it the four OpenSSL cipher contexts (SRTP and SRTCP, each way), with one SSRC each way; the libsrtp2
/// reference on NSS takes 36 KB and 62 KB (measured with `SRTPMemoryTests`).
///
/// Not thread-safe; use one instance from one event loop.
public final class SRTPSession {
    /// Protects what this side sends.
    public let outbound: SRTPOutboundSession
    /// Unprotects what the peer sends.
    public let inbound: SRTPInboundSession

    /// The profile both directions run.
    public var profile: SRTPProfile { self.outbound.profile }

    /// Prefetches what protecting a packet reads, one pointer level per stage (0: the outbound session's
    /// object; see ``SRTPOutboundSession/prefetch(stage:)``).
    public func prefetchOutbound(stage: Int) {
        if stage == 0 {
            braid_prefetch(UnsafeRawPointer(Unmanaged.passUnretained(self.outbound).toOpaque()))
        } else {
            self.outbound.prefetch(stage: stage - 1)
        }
    }

    /// Creates both directions from a pair of master keys.
    public init(keys: SRTPKeys, replayWindowSize: Int = 128, allowRepeatTransmission: Bool = true) throws(SRTPError) {
        self.outbound = try SRTPOutboundSession(
            profile: keys.profile,
            masterKey: keys.local,
            allowRepeatTransmission: allowRepeatTransmission
        )
        self.inbound = try SRTPInboundSession(
            profile: keys.profile,
            masterKey: keys.remote,
            replayWindowSize: replayWindowSize
        )
    }

    /// Creates both directions on a chosen implementation (tests and benchmarks).
    @_spi(SRTPReference)
    public init(
        keys: SRTPKeys,
        replayWindowSize: Int = 128,
        allowRepeatTransmission: Bool = true,
        implementation: SRTPImplementation
    ) throws(SRTPError) {
        self.outbound = try SRTPOutboundSession(
            profile: keys.profile,
            masterKey: keys.local,
            allowRepeatTransmission: allowRepeatTransmission,
            implementation: implementation
        )
        self.inbound = try SRTPInboundSession(
            profile: keys.profile,
            masterKey: keys.remote,
            replayWindowSize: replayWindowSize,
            implementation: implementation
        )
    }

    /// Creates both directions from DTLS exported keying material
    /// ([RFC 5764 §4.2](https://www.rfc-editor.org/rfc/rfc5764#section-4.2)) for this side's `role`.
    public convenience init(
        keyingMaterial: some Collection<UInt8>,
        profile: SRTPProfile,
        role: DTLSRole,
        replayWindowSize: Int = 128
    ) throws(SRTPError) {
        try self.init(
            keys: SRTPKeys(keyingMaterial: keyingMaterial, profile: profile, role: role),
            replayWindowSize: replayWindowSize
        )
    }

    /// See ``SRTPOutboundSession/protectRTP(_:into:)``.
    @inlinable
    public func protectRTP(_ packet: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer)
        throws(SRTPError) -> Int
    {
        try self.outbound.protectRTP(packet, into: destination)
    }

    /// See ``SRTPOutboundSession/protectRTCP(_:into:)``.
    @inlinable
    public func protectRTCP(_ packet: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer)
        throws(SRTPError) -> Int
    {
        try self.outbound.protectRTCP(packet, into: destination)
    }

    /// See ``SRTPInboundSession/unprotectRTP(_:into:)``.
    @inlinable
    public func unprotectRTP(_ packet: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer)
        throws(SRTPError) -> Int
    {
        try self.inbound.unprotectRTP(packet, into: destination)
    }

    /// See ``SRTPInboundSession/unprotectRTCP(_:into:)``.
    @inlinable
    public func unprotectRTCP(_ packet: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer)
        throws(SRTPError) -> Int
    {
        try self.inbound.unprotectRTCP(packet, into: destination)
    }
}
