import NIOCore

/// The negotiated local identifier of each header extension this module can decode.
///
/// IDs are per session and come from SDP `a=extmap` lines
/// ([RFC 8285 §5](https://www.rfc-editor.org/rfc/rfc8285#section-5)); browsers change them between
/// offers, so they are never hard-coded. Build one with ``register(id:uri:)`` or
/// ``init(_:)`` from the negotiated list, then pass it to the typed accessors of ``RTPPacket``.
public struct RTPHeaderExtensionMap: Hashable, Sendable, Codable {
    /// `urn:ietf:params:rtp-hdrext:sdes:mid` (RFC 9143 §15).
    public static let midURI = "urn:ietf:params:rtp-hdrext:sdes:mid"
    /// `urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id` (RFC 8852 §3.1).
    public static let ridURI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
    /// `urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id` (RFC 8852 §3.2).
    public static let repairedRIDURI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
    /// `http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time`.
    public static let absSendTimeURI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
    /// `http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01`.
    public static let transportSequenceNumberURI =
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
    /// `urn:ietf:params:rtp-hdrext:ssrc-audio-level` (RFC 6464).
    public static let audioLevelURI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
    /// `http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time`.
    public static let absCaptureTimeURI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"

    /// Local ID of ``midURI``.
    public var mid: UInt8?
    /// Local ID of ``ridURI``.
    public var rid: UInt8?
    /// Local ID of ``repairedRIDURI``.
    public var repairedRID: UInt8?
    /// Local ID of ``absSendTimeURI``.
    public var absSendTime: UInt8?
    /// Local ID of ``transportSequenceNumberURI``.
    public var transportSequenceNumber: UInt8?
    /// Local ID of ``audioLevelURI``.
    public var audioLevel: UInt8?
    /// Local ID of ``absCaptureTimeURI``.
    public var absCaptureTime: UInt8?

    /// An empty map: no extension is decoded.
    public init() {}

    /// A map from negotiated `(id, uri)` pairs; unknown URIs and invalid IDs are ignored.
    public init(_ extmap: some Sequence<(id: Int, uri: String)>) {
        for entry in extmap {
            self.register(id: entry.id, uri: entry.uri)
        }
    }

    /// Records the local ID of `uri`.
    /// - Returns: false (and changes nothing) when the URI is not one this map knows, or `id` is not
    ///   a valid RFC 8285 local identifier (1–255).
    @discardableResult
    public mutating func register(id: Int, uri: String) -> Bool {
        guard (1...255).contains(id) else { return false }
        let id = UInt8(id)
        switch uri {
        case Self.midURI: self.mid = id
        case Self.ridURI: self.rid = id
        case Self.repairedRIDURI: self.repairedRID = id
        case Self.absSendTimeURI: self.absSendTime = id
        case Self.transportSequenceNumberURI: self.transportSequenceNumber = id
        case Self.audioLevelURI: self.audioLevel = id
        case Self.absCaptureTimeURI: self.absCaptureTime = id
        default: return false
        }
        return true
    }

    /// The local ID registered for `uri`, if any.
    public func id(for uri: String) -> UInt8? {
        switch uri {
        case Self.midURI: self.mid
        case Self.ridURI: self.rid
        case Self.repairedRIDURI: self.repairedRID
        case Self.absSendTimeURI: self.absSendTime
        case Self.transportSequenceNumberURI: self.transportSequenceNumber
        case Self.audioLevelURI: self.audioLevel
        case Self.absCaptureTimeURI: self.absCaptureTime
        default: nil
        }
    }
}

extension RTPPacket {
    /// Decodes the element `id` as `type`.
    /// - Returns: nil when `id` is nil (not negotiated) or the packet has no such element.
    /// - Throws: `.badExtension` when the element's value is not a valid `type`.
    @inlinable
    public func headerExtension<Value: RTPHeaderExtensionValue>(
        _ type: Value.Type, id: UInt8?
    ) throws(WireError) -> Value? {
        guard let id, let element = self.extension(id: id) else { return nil }
        return try Value(extensionValue: element.value)
    }

    /// The MID, if negotiated in `map` and present.
    @inlinable public func mid(_ map: RTPHeaderExtensionMap) throws(WireError) -> RTPStreamIdentifier? {
        try self.headerExtension(RTPStreamIdentifier.self, id: map.mid)
    }

    /// The RID (RtpStreamId), if negotiated in `map` and present.
    @inlinable public func rid(_ map: RTPHeaderExtensionMap) throws(WireError) -> RTPStreamIdentifier? {
        try self.headerExtension(RTPStreamIdentifier.self, id: map.rid)
    }

    /// The repaired RID (RepairedRtpStreamId, carried by RTX), if negotiated in `map` and present.
    @inlinable public func repairedRID(_ map: RTPHeaderExtensionMap) throws(WireError) -> RTPStreamIdentifier? {
        try self.headerExtension(RTPStreamIdentifier.self, id: map.repairedRID)
    }

    /// The abs-send-time, if negotiated in `map` and present.
    @inlinable public func absSendTime(_ map: RTPHeaderExtensionMap) throws(WireError) -> AbsSendTime? {
        try self.headerExtension(AbsSendTime.self, id: map.absSendTime)
    }

    /// The transport-wide sequence number, if negotiated in `map` and present.
    @inlinable
    public func transportSequenceNumber(_ map: RTPHeaderExtensionMap) throws(WireError) -> TransportSequenceNumber? {
        try self.headerExtension(TransportSequenceNumber.self, id: map.transportSequenceNumber)
    }

    /// The RFC 6464 audio level, if negotiated in `map` and present.
    @inlinable public func audioLevel(_ map: RTPHeaderExtensionMap) throws(WireError) -> AudioLevel? {
        try self.headerExtension(AudioLevel.self, id: map.audioLevel)
    }

    /// The absolute capture time, if negotiated in `map` and present.
    @inlinable public func absCaptureTime(_ map: RTPHeaderExtensionMap) throws(WireError) -> AbsCaptureTime? {
        try self.headerExtension(AbsCaptureTime.self, id: map.absCaptureTime)
    }
}
