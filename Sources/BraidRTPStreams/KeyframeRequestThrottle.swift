public import BraidWire
public import NIOCore

/// Collapses keyframe requests (PLI/FIR) from many subscribers into few requests to the publisher.
///
/// Every subscriber of a video track may ask for a keyframe (a PLI, RFC 4585 §6.3.1, or a FIR, RFC 5104
/// §4.3.1) when it joins or loses packets it cannot repair. Forwarding each one would make the publisher
/// send a burst of keyframes. Instead, at most one request goes upstream per ``interval`` (default 1 s,
/// as mediasoup's `KeyFrameRequestManager`); if no keyframe arrived within that interval the request is
/// repeated (``retryDue(now:)``); when a keyframe arrives the throttle is released so the next request
/// goes out at once.
///
/// FIR carries a sequence number per media sender, incremented for each new request and repeated for a
/// retransmission of the same request (RFC 5104 §4.3.1.1); the throttle keeps it for its media SSRC.
///
/// Ownership: one throttle per upstream media SSRC (a producer's stream), on its event loop; the owner
/// calls ``retryDue(now:)`` from its periodic tick. A few integers, no allocation.
public struct KeyframeRequestThrottle: Sendable {
    /// How an upstream request should be sent.
    public enum Request: Sendable, Hashable {
        /// A new request: send a PLI, or a FIR with `firSequenceNumber` (already incremented).
        case new(firSequenceNumber: UInt8)
        /// The previous request got no keyframe in time: send it again (FIR with the same number).
        case retry(firSequenceNumber: UInt8)
    }

    /// SSRC of the publisher's media stream the requests are about.
    public let mediaSSRC: UInt32
    /// Minimum time between two upstream requests.
    public var interval: TimeAmount

    /// Whether a keyframe has been asked for and not yet received.
    public private(set) var isWaitingForKeyframe = false
    var lastRequestAt: NIODeadline?
    /// The FIR sequence number of the latest request.
    public private(set) var firSequenceNumber: UInt8
    /// Downstream requests absorbed without an upstream request.
    public private(set) var requestsCollapsed = 0
    /// Requests sent upstream (retries included).
    public private(set) var requestsSent = 0

    /// Creates a throttle for `mediaSSRC`; the first FIR will carry `initialFIRSequenceNumber` + 1.
    public init(mediaSSRC: UInt32, interval: TimeAmount = .seconds(1), initialFIRSequenceNumber: UInt8 = 0) {
        self.mediaSSRC = mediaSSRC
        self.interval = interval
        self.firSequenceNumber = initialFIRSequenceNumber
    }

    /// A subscriber asked for a keyframe (or the node itself needs one, e.g. after NACK overflow).
    /// - Returns: the request to send upstream now, or nil when one was sent less than ``interval`` ago.
    public mutating func keyframeRequested(now: NIODeadline) -> Request? {
        self.isWaitingForKeyframe = true
        if let last = self.lastRequestAt, now - last < self.interval {
            self.requestsCollapsed += 1
            return nil
        }
        self.lastRequestAt = now
        self.firSequenceNumber &+= 1
        self.requestsSent += 1
        return .new(firSequenceNumber: self.firSequenceNumber)
    }

    /// Called on the owner's tick: the request to repeat when a keyframe is still awaited ``interval``
    /// after the last request.
    public mutating func retryDue(now: NIODeadline) -> Request? {
        guard self.isWaitingForKeyframe, let last = self.lastRequestAt, now - last >= self.interval else {
            return nil
        }
        self.lastRequestAt = now
        self.requestsSent += 1
        return .retry(firSequenceNumber: self.firSequenceNumber)
    }

    /// A keyframe arrived from the publisher: stop waiting, and let the next request through at once.
    public mutating func keyframeReceived() {
        self.isWaitingForKeyframe = false
        self.lastRequestAt = nil
    }

    /// Appends the PLI for this media SSRC (RFC 4585 §6.3.1) to `buffer`.
    public func writePLI(senderSSRC: UInt32, into buffer: inout ByteBuffer) throws(WireError) {
        try RTCPPictureLossIndication.write(senderSSRC: senderSSRC, mediaSSRC: self.mediaSSRC, into: &buffer)
    }

    /// Appends a FIR for this media SSRC with `request`'s sequence number (RFC 5104 §4.3.1) to `buffer`.
    public func writeFIR(_ request: Request, senderSSRC: UInt32, into buffer: inout ByteBuffer) throws(WireError) {
        let number: UInt8
        switch request {
        case .new(let value), .retry(let value): number = value
        }
        try RTCPFullIntraRequest.write(
            senderSSRC: senderSSRC,
            entries: CollectionOfOne(RTCPFullIntraRequest.Entry(ssrc: self.mediaSSRC, sequenceNumber: number)),
            into: &buffer)
    }
}
