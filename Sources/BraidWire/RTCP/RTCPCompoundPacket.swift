public import NIOCore

/// One RTCP packet of a compound, as a typed zero-copy view.
public enum RTCPPacket: Sendable {
    case senderReport(RTCPSenderReport)
    case receiverReport(RTCPReceiverReport)
    case sourceDescription(RTCPSourceDescription)
    case goodbye(RTCPGoodbye)
    case genericNACK(RTCPGenericNACK)
    case transportWideFeedback(RTCPTransportWideFeedback)
    case pictureLossIndication(RTCPPictureLossIndication)
    case fullIntraRequest(RTCPFullIntraRequest)
    case receiverEstimatedMaximumBitrate(RTCPReceiverEstimatedMaximumBitrate)
    /// A packet type or feedback format this module does not model (APP, XR, other FMTs, ...).
    case unknown(RTCPUnknownPacket)
    /// A packet of a known type whose body is malformed. The compound's framing was valid, so the other
    /// packets are still usable; the caller counts and drops this one.
    case malformed(RTCPHeader, WireError)

    /// The common header of the packet.
    public var header: RTCPHeader {
        switch self {
        case .senderReport(let packet): packet.header
        case .receiverReport(let packet): packet.header
        case .sourceDescription(let packet): packet.header
        case .goodbye(let packet): packet.header
        case .genericNACK(let packet): packet.header
        case .transportWideFeedback(let packet): packet.header
        case .pictureLossIndication(let packet): packet.header
        case .fullIntraRequest(let packet): packet.header
        case .receiverEstimatedMaximumBitrate(let packet): packet.header
        case .unknown(let packet): packet.header
        case .malformed(let header, _): header
        }
    }

    /// Classifies and parses one framed packet; never throws (a bad body becomes ``malformed(_:_:)``).
    init(_ slice: RTCPPacketSlice) {
        do throws(WireError) {
            switch (slice.header.packetType, slice.header.count) {
            case (RTCPPacketType.senderReport, _): self = .senderReport(try RTCPSenderReport(slice))
            case (RTCPPacketType.receiverReport, _): self = .receiverReport(try RTCPReceiverReport(slice))
            case (RTCPPacketType.sourceDescription, _): self = .sourceDescription(try RTCPSourceDescription(slice))
            case (RTCPPacketType.goodbye, _): self = .goodbye(try RTCPGoodbye(slice))
            case (RTCPPacketType.transportFeedback, RTCPFeedbackFormat.genericNACK):
                self = .genericNACK(try RTCPGenericNACK(slice))
            case (RTCPPacketType.transportFeedback, RTCPFeedbackFormat.transportWideCC):
                self = .transportWideFeedback(try RTCPTransportWideFeedback(slice))
            case (RTCPPacketType.payloadFeedback, RTCPFeedbackFormat.pictureLossIndication):
                self = .pictureLossIndication(try RTCPPictureLossIndication(slice))
            case (RTCPPacketType.payloadFeedback, RTCPFeedbackFormat.fullIntraRequest):
                self = .fullIntraRequest(try RTCPFullIntraRequest(slice))
            case (RTCPPacketType.payloadFeedback, RTCPFeedbackFormat.applicationLayer)
            where RTCPReceiverEstimatedMaximumBitrate.isREMB(slice):
                self = .receiverEstimatedMaximumBitrate(try RTCPReceiverEstimatedMaximumBitrate(slice))
            default:
                self = .unknown(RTCPUnknownPacket(packet: slice))
            }
        } catch {
            self = .malformed(slice.header, error)
        }
    }
}

/// A packet this module does not interpret: its header and a zero-copy slice of its body.
public struct RTCPUnknownPacket: Sendable {
    let packet: RTCPPacketSlice

    /// The packet's common header.
    public var header: RTCPHeader { self.packet.header }
    /// The packet type (e.g. 204 APP, 207 XR).
    public var packetType: UInt8 { self.packet.header.packetType }
    /// The bytes after the 4-byte header, padding excluded.
    public var body: ByteBuffer {
        self.packet.bytes.getSlice(at: RTCPHeader.size, length: self.packet.bodyLength) ?? ByteBuffer()
    }
}

/// An RTCP compound packet: the RTCP packets of one datagram (after SRTCP unprotect), read lazily.
///
/// [RFC 3550 §6.1](https://www.rfc-editor.org/rfc/rfc3550#section-6.1) stacks packets back to back, each
/// announcing its own length:
///
/// ```
/// if encrypted: random 32-bit integer
/// |
/// |[--------- packet --------][---------- packet ----------][-packet-]
/// |
/// |                receiver            chunk        chunk
/// V                reports           item  item   item  item
/// --------------------------------------------------------------------
/// R[SR #sendinfo #site1#site2][SDES #CNAME PHONE #CNAME LOC][BYE##why]
/// --------------------------------------------------------------------
/// |                                                                  |
/// |<-----------------------  compound packet ----------------------->|
/// |<--------------------------  UDP packet ------------------------->|
/// ```
///
/// The initialiser checks the framing once, following the validity checks of
/// [RFC 3550 Appendix A.2](https://www.rfc-editor.org/rfc/rfc3550#appendix-A.2): every packet has
/// version 2, its length fits, the lengths add up to the datagram exactly, and only the last packet has the
/// padding bit. It does NOT require the first packet to be SR or RR, since reduced-size RTCP
/// ([RFC 5506](https://www.rfc-editor.org/rfc/rfc5506)) sends lone feedback packets. Iteration then
/// yields one ``RTCPPacket`` per packet, parsing each body only when reached.
public struct RTCPCompoundPacket: Sequence, Sendable {
    let bytes: ByteBuffer
    /// How many packets the compound holds.
    public let count: Int

    /// Validates the framing of `buffer`'s readable bytes (which it keeps, without copying).
    /// - Throws: ``WireError/Code/truncated`` for an empty datagram or a packet running past its end,
    ///   ``WireError/Code/badVersion``, ``WireError/Code/badPadding`` for padding on a packet other than the
    ///   last or an impossible padding count.
    public init(_ buffer: ByteBuffer) throws(WireError) {
        let bytes = buffer.getSlice(at: buffer.readerIndex, length: buffer.readableBytes) ?? ByteBuffer()
        let end = bytes.readableBytes
        guard end > 0 else { throw WireError(.truncated, "empty RTCP datagram") }
        var offset = 0
        var count = 0
        while offset < end {
            let header = try RTCPHeader.read(bytes, at: offset, end: end)
            if header.padding {
                guard offset + header.byteCount == end else {
                    throw WireError(.badPadding, "RTCP padding bit on packet \(count), which is not the last")
                }
                _ = try RTCPHeader.paddingCount(bytes, packetStart: offset, header: header)
            }
            offset += header.byteCount
            count += 1
        }
        self.bytes = bytes
        self.count = count
    }

    public var underestimatedCount: Int { self.count }

    public struct Iterator: IteratorProtocol, Sendable {
        let bytes: ByteBuffer
        var offset = 0

        public mutating func next() -> RTCPPacket? {
            let end = self.bytes.readableBytes
            guard self.offset < end,
                let header = try? RTCPHeader.read(self.bytes, at: self.offset, end: end),
                let slice = self.bytes.getSlice(at: self.offset, length: header.byteCount)
            else { return nil }
            self.offset += header.byteCount
            // Validated in the compound's initialiser; recomputed here so the iterator stores nothing more.
            let pad = (try? RTCPHeader.paddingCount(slice, packetStart: 0, header: header)) ?? 0
            return RTCPPacket(RTCPPacketSlice(header: header, bytes: slice, bodyEnd: header.byteCount - pad))
        }
    }

    public func makeIterator() -> Iterator { Iterator(bytes: self.bytes) }
}

/// Appends RTCP packets one after another into one buffer, forming a compound packet.
///
/// Owns the buffer while building (move it in with `consume` to avoid a copy-on-write), and gives it
/// back from ``finish()``. Every `append` writes at the writer index and never grows the buffer: if the
/// packet does not fit the remaining capacity it throws and leaves the buffer as it was.
///
/// ```swift
/// var builder = RTCPCompoundBuilder(buffer: allocator.buffer(capacity: 1200))
/// try builder.appendReceiverReport(senderSSRC: 1, reportBlocks: blocks)
/// try builder.appendCNAME(ssrc: 1, cname: "braid")
/// try builder.appendPictureLossIndication(senderSSRC: 1, mediaSSRC: 2)
/// let datagram = builder.finish()
/// ```
public struct RTCPCompoundBuilder: Sendable {
    /// The buffer being filled; packets start at its writer index when the builder was made.
    public private(set) var buffer: ByteBuffer
    /// Writer index when the builder started.
    let start: Int

    public init(buffer: ByteBuffer) {
        self.buffer = buffer
        self.start = buffer.writerIndex
    }

    /// Bytes appended so far.
    public var byteCount: Int { self.buffer.writerIndex - self.start }

    /// Returns the buffer with every appended packet.
    public consuming func finish() -> ByteBuffer { self.buffer }

    /// Runs a single-packet builder, restoring the writer index if it fails part-way.
    public mutating func append(_ body: (inout ByteBuffer) throws(WireError) -> Void) throws(WireError) {
        let mark = self.buffer.writerIndex
        do {
            try body(&self.buffer)
        } catch {
            self.buffer.moveWriterIndex(to: mark)
            throw error
        }
    }

    @inlinable
    public mutating func appendSenderReport(
        senderSSRC: UInt32,
        ntpTimestamp: UInt64,
        rtpTimestamp: UInt32,
        packetCount: UInt32,
        octetCount: UInt32,
        reportBlocks: some Collection<RTCPReportBlock>
    ) throws(WireError) {
        try self.append { (buffer: inout ByteBuffer) throws(WireError) in
            try RTCPSenderReport.write(
                senderSSRC: senderSSRC, ntpTimestamp: ntpTimestamp, rtpTimestamp: rtpTimestamp,
                packetCount: packetCount, octetCount: octetCount, reportBlocks: reportBlocks, into: &buffer)
        }
    }

    @inlinable
    public mutating func appendReceiverReport(
        senderSSRC: UInt32,
        reportBlocks: some Collection<RTCPReportBlock>
    ) throws(WireError) {
        try self.append { (buffer: inout ByteBuffer) throws(WireError) in
            try RTCPReceiverReport.write(senderSSRC: senderSSRC, reportBlocks: reportBlocks, into: &buffer)
        }
    }

    @inlinable
    public mutating func appendCNAME(ssrc: UInt32, cname: some StringProtocol) throws(WireError) {
        try self.append { (buffer: inout ByteBuffer) throws(WireError) in
            try RTCPSourceDescription.writeCNAME(ssrc: ssrc, cname: cname, into: &buffer)
        }
    }

    @inlinable
    public mutating func appendGoodbye(ssrcs: some Collection<UInt32>) throws(WireError) {
        try self.append { (buffer: inout ByteBuffer) throws(WireError) in
            try RTCPGoodbye.write(ssrcs: ssrcs, into: &buffer)
        }
    }

    @inlinable
    public mutating func appendGenericNACK(
        senderSSRC: UInt32,
        mediaSSRC: UInt32,
        lostSequenceNumbers: some Collection<UInt16>
    ) throws(WireError) {
        try self.append { (buffer: inout ByteBuffer) throws(WireError) in
            try RTCPGenericNACK.write(
                senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, lostSequenceNumbers: lostSequenceNumbers, into: &buffer)
        }
    }

    @inlinable
    public mutating func appendPictureLossIndication(senderSSRC: UInt32, mediaSSRC: UInt32) throws(WireError) {
        try self.append { (buffer: inout ByteBuffer) throws(WireError) in
            try RTCPPictureLossIndication.write(senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, into: &buffer)
        }
    }

    @inlinable
    public mutating func appendFullIntraRequest(
        senderSSRC: UInt32,
        entries: some Collection<RTCPFullIntraRequest.Entry>
    ) throws(WireError) {
        try self.append { (buffer: inout ByteBuffer) throws(WireError) in
            try RTCPFullIntraRequest.write(senderSSRC: senderSSRC, entries: entries, into: &buffer)
        }
    }

    @inlinable
    public mutating func appendREMB(senderSSRC: UInt32, bitrate: UInt64, ssrcs: some Collection<UInt32>) throws(WireError) {
        try self.append { (buffer: inout ByteBuffer) throws(WireError) in
            try RTCPReceiverEstimatedMaximumBitrate.write(
                senderSSRC: senderSSRC, bitrate: bitrate, ssrcs: ssrcs, into: &buffer)
        }
    }

    /// Appends transport-wide feedback; see
    /// ``RTCPTransportWideFeedback/write(senderSSRC:mediaSSRC:baseSequenceNumber:referenceTime:feedbackPacketCount:arrivals:maxPacketSize:into:)``.
    @discardableResult
    @inlinable
    public mutating func appendTransportWideFeedback(
        senderSSRC: UInt32,
        mediaSSRC: UInt32,
        baseSequenceNumber: UInt16,
        referenceTime: Int64? = nil,
        feedbackPacketCount: UInt8,
        arrivals: some Collection<Int64?>,
        maxPacketSize: Int = .max
    ) throws(WireError) -> RTCPTransportWideFeedback.WriteResult {
        var result: RTCPTransportWideFeedback.WriteResult? = nil
        try self.append { (buffer: inout ByteBuffer) throws(WireError) in
            result = try RTCPTransportWideFeedback.write(
                senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, baseSequenceNumber: baseSequenceNumber,
                referenceTime: referenceTime, feedbackPacketCount: feedbackPacketCount, arrivals: arrivals,
                maxPacketSize: maxPacketSize, into: &buffer)
        }
        // `append` returned normally, so the closure assigned `result`.
        return result ?? RTCPTransportWideFeedback.WriteResult(packetCount: 0, stopReason: .full, referenceTime: 0, byteCount: 0)
    }
}
