public import NIOCore

/// Transport-wide congestion control feedback (RTPFB, PT 205, FMT 15).
///
/// [draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1](https://datatracker.ietf.org/doc/html/draft-holmer-rmcat-transport-wide-cc-extensions-01#section-3.1):
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |V=2|P|  FMT=15 |    PT=205     |           length              |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     SSRC of packet sender                     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      SSRC of media source                     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |      base sequence number     |      packet status count      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                 reference time                | fb pkt. count |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          packet chunk         |         packet chunk          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// .                                                               .
/// |         packet chunk          |  recv delta   |  recv delta   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// .                                                               .
/// |           recv delta          |  recv delta   | zero padding  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// run length chunk:                  status vector chunk:
///  0                   1              0                   1
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |T| S |       Run Length        |  |T|S|       symbol list         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///  T=0, S = symbol                    T=1; S=0: 14 one-bit symbols (0 not received, 1 small delta);
///                                     S=1: 7 two-bit symbols
/// ```
///
/// Symbols: 00 not received, 01 received with a small delta (one unsigned byte), 10 received with a
/// large or negative delta (signed 16 bits), 11 reserved (rejected). Deltas count 250 µs ticks, each
/// relative to the previous received packet, the first relative to the reference time (signed 24 bits,
/// in multiples of 64 ms). The initialiser walks every chunk once, so that the chunks cover exactly the
/// status count and the deltas they announce fit the packet; ``packets`` then iterates without allocating.
public struct RTCPTransportWideFeedback: Sendable {
    let packet: RTCPPacketSlice
    /// Offset of the first receive delta (just past the last chunk).
    let deltasStart: Int

    /// Fixed part before the first chunk, header included.
    @usableFromInline
    static let fixedSize = 20
    /// Microseconds per delta tick.
    public static let deltaTickMicroseconds: Int64 = 250
    /// Microseconds per reference-time unit.
    public static let referenceTimeUnitMicroseconds: Int64 = 64_000
    /// The longest run a run-length chunk holds.
    @usableFromInline
    static let maxRunLength = 0x1FFF

    /// Parses one transport-wide feedback packet that fills `buffer`'s readable bytes.
    public init(_ buffer: ByteBuffer) throws(WireError) { try self.init(RTCPPacketSlice(single: buffer)) }

    init(_ packet: RTCPPacketSlice) throws(WireError) {
        try packet.expect(type: RTCPPacketType.transportFeedback, format: RTCPFeedbackFormat.transportWideCC, "TWCC")
        guard packet.bodyEnd >= Self.fixedSize else {
            throw WireError(.badLength, "TWCC needs \(Self.fixedSize) bytes before its chunks, has \(packet.bodyEnd)")
        }
        let statusCount = Int(packet.bytes.rtcpU16(14))
        guard statusCount > 0 else { throw WireError(.badValue, "TWCC packet status count is 0") }
        var offset = Self.fixedSize
        var covered = 0
        var deltaBytes = 0
        while covered < statusCount {
            guard packet.bodyEnd - offset >= 2 else {
                throw WireError(.badLength, "TWCC chunks for \(statusCount) statuses run past the packet")
            }
            let chunk = packet.bytes.rtcpU16(offset)
            offset += 2
            let wanted = statusCount - covered
            switch Chunk(chunk) {
            case .runLength(let symbol, let run):
                guard run > 0 else { throw WireError(.badValue, "TWCC run-length chunk with run 0") }
                guard symbol != 3 else { throw WireError(.badValue, "TWCC run-length chunk with reserved symbol 3") }
                let used = min(run, wanted)
                deltaBytes += used * Int(symbol)
                covered += used
            case .oneBit(let bits):
                let used = min(14, wanted)
                // Symbols are most significant first; keep the `used` leading ones.
                deltaBytes += (bits >> (14 - used)).nonzeroBitCount
                covered += used
            case .twoBit(let bits):
                let used = min(7, wanted)
                for index in 0..<used {
                    let symbol = (bits >> (12 - 2 * index)) & 3
                    guard symbol != 3 else { throw WireError(.badValue, "TWCC status vector with reserved symbol 3") }
                    deltaBytes += Int(symbol)
                }
                covered += used
            }
        }
        guard deltaBytes <= packet.bodyEnd - offset else {
            throw WireError(.badLength, "TWCC deltas need \(deltaBytes) bytes, \(packet.bodyEnd - offset) remain")
        }
        guard packet.bodyEnd - offset - deltaBytes < 4 else {
            throw WireError(.trailingBytes, "TWCC has \(packet.bodyEnd - offset - deltaBytes) bytes after its deltas")
        }
        self.packet = packet
        self.deltasStart = offset
    }

    /// The packet's common header.
    public var header: RTCPHeader { self.packet.header }
    /// SSRC of the packet's sender.
    public var senderSSRC: UInt32 { self.packet.senderSSRC }
    /// SSRC of the media source the feedback is about.
    public var mediaSSRC: UInt32 { self.packet.mediaSSRC }
    /// Transport-wide sequence number of the first packet reported.
    public var baseSequenceNumber: UInt16 { self.packet.bytes.rtcpU16(12) }
    /// Number of packets reported, lost ones included.
    public var packetStatusCount: Int { Int(self.packet.bytes.rtcpU16(14)) }
    /// The reference time: a signed 24-bit count of 64 ms units.
    public var referenceTime: Int32 { Int32(bitPattern: self.packet.bytes.rtcpU32(16)) >> 8 }
    /// ``referenceTime`` in microseconds.
    public var referenceTimeMicroseconds: Int64 { Int64(self.referenceTime) * Self.referenceTimeUnitMicroseconds }
    /// The feedback packet count, for the sender to detect lost feedback.
    public var feedbackPacketCount: UInt8 { self.packet.bytes.rtcpU8(19) }
    /// Every reported packet in sequence order, with its arrival time.
    public var packets: Packets { Packets(feedback: self) }

    /// What a status symbol says about a packet.
    public enum Status: UInt8, Hashable, Sendable {
        case notReceived = 0
        /// Received; its delta fits one unsigned byte (0...63.75 ms).
        case receivedSmallDelta = 1
        /// Received; its delta needed a signed 16-bit field (negative or over 63.75 ms).
        case receivedLargeDelta = 2
    }

    /// One reported packet.
    public struct PacketStatus: Hashable, Sendable {
        /// The transport-wide sequence number (wraps at 65536).
        public var sequenceNumber: UInt16
        /// Whether and how the packet was received.
        public var status: Status
        /// Arrival time in microseconds after the reference time (``referenceTimeMicroseconds``), or nil if
        /// the packet was not received.
        public var arrivalOffset: Int64?

        public init(sequenceNumber: UInt16, status: Status, arrivalOffset: Int64?) {
            self.sequenceNumber = sequenceNumber
            self.status = status
            self.arrivalOffset = arrivalOffset
        }
    }

    enum Chunk {
        case runLength(symbol: UInt16, run: Int)
        case oneBit(UInt16)
        case twoBit(UInt16)

        init(_ raw: UInt16) {
            if raw & 0x8000 == 0 {
                self = .runLength(symbol: (raw >> 13) & 3, run: Int(raw & 0x1FFF))
            } else if raw & 0x4000 == 0 {
                self = .oneBit(raw & 0x3FFF)
            } else {
                self = .twoBit(raw & 0x3FFF)
            }
        }
    }

    /// The reported packets, decoded lazily.
    public struct Packets: Sequence, Sendable {
        let feedback: RTCPTransportWideFeedback

        public var underestimatedCount: Int { self.feedback.packetStatusCount }

        public struct Iterator: IteratorProtocol, Sendable {
            let bytes: ByteBuffer
            var chunkOffset = RTCPTransportWideFeedback.fixedSize
            var deltaOffset: Int
            var remaining: Int
            var sequenceNumber: UInt16
            var arrival: Int64 = 0
            /// The chunk being read, its kind and how many of its symbols are left.
            var chunk: UInt16 = 0
            var symbolsLeft = 0
            var symbolIndex = 0

            public mutating func next() -> PacketStatus? {
                guard self.remaining > 0 else { return nil }
                if self.symbolsLeft == 0 {
                    self.chunk = self.bytes.rtcpU16(self.chunkOffset)
                    self.chunkOffset += 2
                    self.symbolIndex = 0
                    switch Chunk(self.chunk) {
                    case .runLength(_, let run): self.symbolsLeft = run
                    case .oneBit: self.symbolsLeft = 14
                    case .twoBit: self.symbolsLeft = 7
                    }
                }
                let symbol: UInt16
                switch Chunk(self.chunk) {
                case .runLength(let runSymbol, _): symbol = runSymbol
                case .oneBit(let bits): symbol = (bits >> (13 - self.symbolIndex)) & 1
                case .twoBit(let bits): symbol = (bits >> (12 - 2 * self.symbolIndex)) & 3
                }
                self.symbolIndex += 1
                self.symbolsLeft -= 1
                self.remaining -= 1
                let sequenceNumber = self.sequenceNumber
                self.sequenceNumber &+= 1
                switch symbol {
                case 1:
                    self.arrival += Int64(self.bytes.rtcpU8(self.deltaOffset)) * RTCPTransportWideFeedback.deltaTickMicroseconds
                    self.deltaOffset += 1
                    return PacketStatus(sequenceNumber: sequenceNumber, status: .receivedSmallDelta, arrivalOffset: self.arrival)
                case 2:
                    let ticks = Int16(bitPattern: self.bytes.rtcpU16(self.deltaOffset))
                    self.arrival += Int64(ticks) * RTCPTransportWideFeedback.deltaTickMicroseconds
                    self.deltaOffset += 2
                    return PacketStatus(sequenceNumber: sequenceNumber, status: .receivedLargeDelta, arrivalOffset: self.arrival)
                default:
                    return PacketStatus(sequenceNumber: sequenceNumber, status: .notReceived, arrivalOffset: nil)
                }
            }
        }

        public func makeIterator() -> Iterator {
            Iterator(
                bytes: self.feedback.packet.bytes,
                deltaOffset: self.feedback.deltasStart,
                remaining: self.feedback.packetStatusCount,
                sequenceNumber: self.feedback.baseSequenceNumber
            )
        }
    }
}

// MARK: - Builder

extension RTCPTransportWideFeedback {
    /// Why ``write(senderSSRC:mediaSSRC:baseSequenceNumber:referenceTime:feedbackPacketCount:arrivals:maxPacketSize:into:)``
    /// stopped before the end of its input.
    public enum StopReason: Hashable, Sendable {
        /// Every arrival was encoded.
        case complete
        /// The next received packet's delta does not fit a signed 16-bit tick count; start a new feedback
        /// packet (with its own reference time) at that packet.
        case deltaOutOfRange
        /// The next packet would have exceeded the writable capacity or `maxPacketSize`.
        case full
        /// The status count field (16 bits) is exhausted.
        case statusCountLimit
    }

    /// What the builder wrote.
    public struct WriteResult: Hashable, Sendable {
        /// How many arrivals (from the start of the input) the packet reports; the caller starts the next
        /// feedback packet at `baseSequenceNumber &+ UInt16(truncatingIfNeeded: packetCount)`.
        public var packetCount: Int
        /// Why encoding stopped.
        public var stopReason: StopReason
        /// The reference time used, in 64 ms units of the caller's clock (the packet carries its low 24 bits).
        public var referenceTime: Int64
        /// Bytes written.
        public var byteCount: Int

        @usableFromInline
        init(packetCount: Int, stopReason: StopReason, referenceTime: Int64, byteCount: Int) {
            self.packetCount = packetCount
            self.stopReason = stopReason
            self.referenceTime = referenceTime
            self.byteCount = byteCount
        }
    }

    /// Appends one feedback packet reporting `arrivals` (one per transport-wide sequence number from
    /// `baseSequenceNumber`, arrival time in microseconds on the caller's clock, nil for lost).
    ///
    /// Chunks are chosen greedily: run-length while the symbols repeat, otherwise a 14×1-bit vector when
    /// all deltas are small, else a 7×2-bit vector. Deltas are rounded to 250 µs ticks and accumulated
    /// from the ROUNDED values, so the receiver's reconstruction never drifts by more than half a tick.
    ///
    /// - Parameters:
    ///   - referenceTime: in 64 ms units of the caller's clock; nil takes the first received arrival
    ///     rounded down to 64 ms (as libwebrtc does).
    ///   - maxPacketSize: cap on the packet's size in bytes, on top of `buffer`'s writable capacity.
    /// - Returns: how many arrivals were encoded and why it stopped; the caller sends the rest in a new packet.
    /// - Throws: ``WireError/Code/badValue`` if `arrivals` is empty or its first packet cannot be encoded
    ///   against `referenceTime`; ``WireError/Code/badLength`` if not even one packet fits.
    @inlinable @discardableResult
    public static func write(
        senderSSRC: UInt32,
        mediaSSRC: UInt32,
        baseSequenceNumber: UInt16,
        referenceTime: Int64? = nil,
        feedbackPacketCount: UInt8,
        arrivals: some Collection<Int64?>,
        maxPacketSize: Int = .max,
        into buffer: inout ByteBuffer
    ) throws(WireError) -> WriteResult {
        guard !arrivals.isEmpty else { throw WireError(.badValue, "TWCC feedback needs at least one packet") }
        let reference: Int64
        if let referenceTime {
            reference = referenceTime
        } else if let first = arrivals.lazy.compactMap({ $0 }).first {
            reference = Self.floorDivide(first, Self.referenceTimeUnitMicroseconds)
        } else {
            reference = 0
        }
        let (baseTime, overflow) = reference.multipliedReportingOverflow(by: Self.referenceTimeUnitMicroseconds)
        guard !overflow else { throw WireError(.badValue, "TWCC reference time \(reference) overflows") }
        let budget = min(buffer.writableBytes, maxPacketSize, 0x4_0000)

        // Pass 1: how many packets fit, and the packet's size.
        var encoder = ChunkEncoder()
        var closedChunks = 0
        var deltaBytes = 0
        var last = baseTime
        var count = 0
        var size = 0
        var stopReason = StopReason.complete
        for arrival in arrivals {
            guard count < Int(UInt16.max) else {
                stopReason = .statusCountLimit
                break
            }
            var symbol: UInt8 = 0
            if let arrival {
                guard let ticks = Self.ticks(from: last, to: arrival) else {
                    stopReason = .deltaOutOfRange
                    break
                }
                symbol = ticks >= 0 && ticks <= 255 ? 1 : 2
                last += ticks * Self.deltaTickMicroseconds
            }
            encoder.add(symbol) { _ in closedChunks += 1 }
            let newDeltaBytes = deltaBytes + Int(symbol)
            let newSize = (Self.fixedSize + 2 * (closedChunks + 1) + newDeltaBytes + 3) / 4 * 4
            guard newSize <= budget else {
                stopReason = .full
                break
            }
            deltaBytes = newDeltaBytes
            size = newSize
            count += 1
        }
        guard count > 0 else {
            if stopReason == .deltaOutOfRange {
                throw WireError(.badValue, "TWCC first arrival is out of delta range of reference time \(reference)")
            }
            throw WireError(.badLength, "TWCC: not even one packet fits in \(budget) bytes")
        }

        // Pass 2: header, chunks, deltas, zero padding.
        let start = buffer.writerIndex
        try RTCPWriter.writeFeedbackHeader(
            &buffer, format: RTCPFeedbackFormat.transportWideCC, packetType: RTCPPacketType.transportFeedback,
            byteCount: size, senderSSRC: senderSSRC, mediaSSRC: mediaSSRC)
        buffer.writeInteger(baseSequenceNumber)
        buffer.writeInteger(UInt16(count))
        buffer.writeInteger(UInt32(truncatingIfNeeded: reference) << 8 | UInt32(feedbackPacketCount))
        encoder = ChunkEncoder()
        last = baseTime
        for arrival in arrivals.prefix(count) {
            var symbol: UInt8 = 0
            if let arrival, let ticks = Self.ticks(from: last, to: arrival) {
                symbol = ticks >= 0 && ticks <= 255 ? 1 : 2
                last += ticks * Self.deltaTickMicroseconds
            }
            encoder.add(symbol) { buffer.writeInteger($0) }
        }
        encoder.flush { buffer.writeInteger($0) }
        last = baseTime
        for arrival in arrivals.prefix(count) {
            guard let arrival, let ticks = Self.ticks(from: last, to: arrival) else { continue }
            last += ticks * Self.deltaTickMicroseconds
            if ticks >= 0 && ticks <= 255 {
                buffer.writeInteger(UInt8(ticks))
            } else {
                buffer.writeInteger(Int16(ticks))
            }
        }
        buffer.writeRepeatingByte(0, count: start + size - buffer.writerIndex)
        return WriteResult(packetCount: count, stopReason: stopReason, referenceTime: reference, byteCount: size)
    }

    /// The delta from `last` to `arrival` rounded to the nearest 250 µs tick, or nil if it does not fit 16
    /// signed bits.
    @inlinable
    static func ticks(from last: Int64, to arrival: Int64) -> Int64? {
        let (difference, overflow) = arrival.subtractingReportingOverflow(last)
        // Anything beyond ±2^15 ticks is out of range; this bound also keeps the arithmetic below safe.
        guard !overflow, difference.magnitude <= 9_000_000 else { return nil }
        let ticks = Self.floorDivide(difference + Self.deltaTickMicroseconds / 2, Self.deltaTickMicroseconds)
        guard ticks >= Int64(Int16.min), ticks <= Int64(Int16.max) else { return nil }
        return ticks
    }

    @inlinable
    static func floorDivide(_ value: Int64, _ divisor: Int64) -> Int64 {
        let quotient = value / divisor
        return value % divisor < 0 ? quotient - 1 : quotient
    }

    /// Greedy packet-chunk encoder that holds at most 14 pending symbols in one integer (no allocation).
    ///
    /// Symbols accumulate while they could still form one chunk: any 7 symbols fit a two-bit vector, 14
    /// symbols without a large delta fit a one-bit vector, and identical symbols fit a run of up to 8191.
    /// When the next symbol fits none of these, the pending symbols are emitted: as a run if all equal,
    /// as a one-bit vector if there are 14, else the first 7 as a two-bit vector (the rest stay pending).
    @usableFromInline
    struct ChunkEncoder {
        /// Pending symbols, 2 bits each, the first at bits 0–1 (only the first 14 are stored).
        @usableFromInline var symbols: UInt32 = 0
        @usableFromInline var size = 0
        @usableFromInline var allSame = true
        @usableFromInline var hasLarge = false

        @inlinable init() {}

        @inlinable var first: UInt8 { UInt8(truncatingIfNeeded: self.symbols & 3) }

        @inlinable func canAdd(_ symbol: UInt8) -> Bool {
            if self.size < 7 { return true }
            if self.size < 14 && !self.hasLarge && symbol != 2 { return true }
            return self.size < RTCPTransportWideFeedback.maxRunLength && self.allSame && self.first == symbol
        }

        @inlinable mutating func add(_ symbol: UInt8, emit: (UInt16) -> Void) {
            if !self.canAdd(symbol) { self.emitFront(emit) }
            if self.size < 14 { self.symbols |= UInt32(symbol) << (2 * self.size) }
            if self.size > 0 && symbol != self.first { self.allSame = false }
            if symbol == 2 { self.hasLarge = true }
            self.size += 1
        }

        /// Emits everything pending (at most one chunk).
        @inlinable mutating func flush(_ emit: (UInt16) -> Void) {
            guard self.size > 0 else { return }
            if self.allSame {
                emit(UInt16(self.first) << 13 | UInt16(self.size))
            } else if self.size <= 7 {
                emit(self.twoBitChunk(self.size))
            } else {
                emit(self.oneBitChunk(self.size))
            }
            self = ChunkEncoder()
        }

        @inlinable mutating func emitFront(_ emit: (UInt16) -> Void) {
            if self.allSame || self.size == 14 {
                self.flush(emit)
                return
            }
            emit(self.twoBitChunk(7))
            self.symbols >>= 14
            self.size -= 7
            self.allSame = true
            self.hasLarge = false
            for index in 0..<self.size {
                let symbol = UInt8(truncatingIfNeeded: (self.symbols >> (2 * index)) & 3)
                if symbol != self.first { self.allSame = false }
                if symbol == 2 { self.hasLarge = true }
            }
        }

        @inlinable func oneBitChunk(_ count: Int) -> UInt16 {
            var chunk: UInt16 = 0x8000
            for index in 0..<count where (self.symbols >> (2 * index)) & 3 != 0 {
                chunk |= 1 << (13 - index)
            }
            return chunk
        }

        @inlinable func twoBitChunk(_ count: Int) -> UInt16 {
            var chunk: UInt16 = 0xC000
            for index in 0..<count {
                chunk |= UInt16(truncatingIfNeeded: (self.symbols >> (2 * index)) & 3) << (12 - 2 * index)
            }
            return chunk
        }
    }
}
