import BraidWire
public import NIOCore

/// The header of a repair packet's payload on hops Braid controls at both ends (`x-braid-fec/90000`),
/// followed by the repair symbol. The repair packet has its own SSRC (announced with
/// `a=ssrc-group:FEC-FR <media> <repair>`), payload type and sequence numbers.
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  first source sequence number |  source count |A|  repair id  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  repair symbol: Σ c(id, s) · (length₁₆ ‖ source packet s), over the window ...
/// ```
///
/// The window is `source count` consecutive media sequence numbers from the first. A source symbol is the
/// protected RTP packet exactly as sent (header, extensions, payload; before SRTP) behind its 16-bit
/// length, zero-padded to the longest in the window. `c(id, s)` is ``CauchyCode/coefficient(repair:source:)``
/// with repair `id` (7 bits) and source `s mod 128`, so repair packets whose windows cover the same lost
/// packets form a Cauchy system, which is always solvable (the sliding-window random linear codes of
/// RFC 8681, with Cauchy coefficients in place of its pseudo-random ones). `A` is set on a repair sent in
/// answer to the receiver's NACK (a repair round, LOSS-NOTES §1.2), which lets the receiver time the round
/// trip as it does from a retransmission.
public struct FECRepairHeader: Hashable, Sendable {
    /// Bytes before the symbol.
    public static let length = 4
    /// Widest window.
    public static let maximumSources = CauchyCode.maximumSources

    /// The first protected media sequence number.
    public var firstSequenceNumber: UInt16
    /// Protected packets (1 ... ``maximumSources``).
    public var sourceCount: Int
    /// The repair id: its coefficient row (0–127).
    public var repairID: UInt8
    /// Sent in answer to a NACK.
    public var answersNACK: Bool

    public init(firstSequenceNumber: UInt16, sourceCount: Int, repairID: UInt8, answersNACK: Bool = false) {
        self.firstSequenceNumber = firstSequenceNumber
        self.sourceCount = sourceCount
        self.repairID = repairID & 0x7F
        self.answersNACK = answersNACK
    }

    /// Reads the header at the start of `payload`.
    public init(_ payload: ByteBuffer) throws(WireError) {
        guard let first = payload.getInteger(at: payload.readerIndex, as: UInt16.self),
            let count = payload.getInteger(at: payload.readerIndex + 2, as: UInt8.self),
            let id = payload.getInteger(at: payload.readerIndex + 3, as: UInt8.self)
        else { throw WireError(.truncated, "repair payload shorter than its 4-byte header") }
        guard count > 0, Int(count) <= Self.maximumSources else {
            throw WireError(.badValue, "repair window of \(count) sources")
        }
        guard payload.readableBytes > Self.length + 2 else { throw WireError(.truncated, "repair packet without a symbol") }
        self.firstSequenceNumber = first
        self.sourceCount = Int(count)
        self.repairID = id & 0x7F
        self.answersNACK = id & 0x80 != 0
    }

    /// Writes the header.
    public func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(self.firstSequenceNumber)
        buffer.writeInteger(UInt8(self.sourceCount))
        buffer.writeInteger(self.repairID | (self.answersNACK ? 0x80 : 0))
    }
}

/// The sending side: keeps the last packets sent on a stream and writes repair symbols over them.
///
/// Storage is one slab of slots of `length₁₆ ‖ packet`; writing a repair symbol allocates nothing. An
/// encoder made with a retention starts with a few slots and doubles them (up to `capacity`) whenever the
/// oldest packet it would overwrite was sent within the retention: the window then spans the same time
/// at any packet rate (a 1.4 Mbit/s stream sends 30 packets in 200 ms, a keyframe 40 at once) while a
/// slow stream keeps few slots. Owned by one stream on one event loop.
public struct SlidingWindowFECEncoder {
    /// Most packets kept (the widest window).
    public let capacity: Int
    /// Slots grow while the packet they would overwrite is younger than this (nil: all made at once).
    public let retention: TimeAmount?
    /// Slots made so far.
    public private(set) var allocated: Int
    private let slotBytes: Int
    private var slab: [UInt8]
    private var sequenceNumbers: [UInt16]
    private var sentAt: [NIODeadline]
    private var lengths: [Int]
    /// Index of the next slot to write, and how many consecutive packets are kept.
    private var head = 0
    private(set) var count = 0
    private var nextRepairID: UInt8 = 0
    /// Slots an encoder with a retention starts with.
    static let initialSlots = 8

    /// An encoder keeping up to `capacity` packets of at most `maximumPacketSize` bytes: all of them
    /// from the start, or, with `retention`, as many as were sent within it.
    public init(capacity: Int = 32, maximumPacketSize: Int = 1500, retention: TimeAmount? = nil) {
        self.capacity = max(1, min(capacity, FECRepairHeader.maximumSources))
        self.retention = retention
        self.allocated = retention == nil ? self.capacity : min(self.capacity, Self.initialSlots)
        self.slotBytes = maximumPacketSize + 2
        self.slab = [UInt8](repeating: 0, count: self.allocated * self.slotBytes)
        self.sequenceNumbers = [UInt16](repeating: 0, count: self.allocated)
        self.sentAt = [NIODeadline](repeating: .uptimeNanoseconds(0), count: self.allocated)
        self.lengths = [Int](repeating: 0, count: self.allocated)
    }

    /// Bytes held.
    public var footprint: Int { self.slab.count + self.allocated * 24 }

    /// Keeps a packet just sent. A sequence number that does not follow the last one starts a new window.
    public mutating func add(_ packet: ByteBuffer, sequenceNumber: UInt16, now: NIODeadline) {
        let length = packet.readableBytes
        guard length + 2 <= self.slotBytes else {
            self.count = 0  // unprotectable: the window restarts after it
            return
        }
        if self.count > 0 {
            let last = self.sequenceNumbers[self.slot(back: 0)]
            if sequenceNumber != last &+ 1 { self.count = 0 }
        }
        if self.count == self.allocated, self.allocated < self.capacity, let retention = self.retention,
            now - self.sentAt[self.slot(back: self.count - 1)] < retention
        {
            self.grow(to: min(self.capacity, self.allocated * 2))
        }
        let base = self.head * self.slotBytes
        self.slab[base] = UInt8(length >> 8)
        self.slab[base + 1] = UInt8(length & 0xFF)
        self.slab.withUnsafeMutableBytes { slab in
            packet.withUnsafeReadableBytes { bytes in
                slab.baseAddress!.advanced(by: base + 2).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            }
        }
        self.sequenceNumbers[self.head] = sequenceNumber
        self.sentAt[self.head] = now
        self.lengths[self.head] = length
        self.head = (self.head + 1) % self.allocated
        self.count = min(self.count + 1, self.allocated)
    }

    /// Moves the kept packets, oldest first, into `slots` new slots.
    private mutating func grow(to slots: Int) {
        var slab = [UInt8](repeating: 0, count: slots * self.slotBytes)
        var sequenceNumbers = [UInt16](repeating: 0, count: slots)
        var sentAt = [NIODeadline](repeating: .uptimeNanoseconds(0), count: slots)
        var lengths = [Int](repeating: 0, count: slots)
        let slotBytes = self.slotBytes
        slab.withUnsafeMutableBytes { target in
            self.slab.withUnsafeBytes { source in
                for index in 0..<self.count {
                    let from = self.slot(back: self.count - 1 - index)
                    target.baseAddress!.advanced(by: index * slotBytes).copyMemory(
                        from: source.baseAddress!.advanced(by: from * slotBytes), byteCount: self.lengths[from] + 2)
                    sequenceNumbers[index] = self.sequenceNumbers[from]
                    sentAt[index] = self.sentAt[from]
                    lengths[index] = self.lengths[from]
                }
            }
        }
        self.slab = slab
        self.sequenceNumbers = sequenceNumbers
        self.sentAt = sentAt
        self.lengths = lengths
        self.head = self.count
        self.allocated = slots
    }

    /// Forgets the kept packets (the stream's source changed).
    public mutating func reset() { self.count = 0 }

    /// Writes a repair payload (header and symbol) over the kept packets sent within `maximumAge` of
    /// `now`, at most `maximumSources` of them, into `buffer`. Returns false when there is nothing to
    /// protect.
    ///
    /// A repair is as long as the longest packet it covers, so a window reaching back to a keyframe's
    /// full-size packets would make every repair after it full size. `maximumSymbolGrowth` stops the window
    /// before a packet that would make the symbol more than that many times longer than the newer packets
    /// need (the keyframe stays covered by the repairs sent while it went out).
    public mutating func writeRepair(
        now: NIODeadline, maximumAge: TimeAmount, maximumSources: Int, maximumSymbolGrowth: Int = .max,
        into buffer: inout ByteBuffer
    ) -> Bool {
        var sources = 0
        var symbolLength = 0
        while sources < min(self.count, maximumSources) {
            let slot = self.slot(back: sources)
            guard now - self.sentAt[slot] <= maximumAge else { break }
            let length = self.lengths[slot] + 2
            guard sources == 0 || length / maximumSymbolGrowth <= symbolLength else { break }
            symbolLength = max(symbolLength, length)
            sources += 1
        }
        guard sources > 0 else { return false }
        self.writeRepair(sources: sources, skippingNewest: 0, symbolLength: symbolLength, answersNACK: false, into: &buffer)
        return true
    }

    /// How many kept packets, from `sequenceNumber` through the newest, a repair starting there would
    /// cover; nil when `sequenceNumber` is no longer kept (or was never sent).
    public func sourcesSince(_ sequenceNumber: UInt16) -> Int? {
        guard self.count > 0 else { return nil }
        let newest = self.sequenceNumbers[self.slot(back: 0)]
        let sources = Int(newest &- sequenceNumber) + 1
        guard sources <= self.count else { return nil }
        return sources
    }

    /// Writes a repair payload over `count` kept packets from `sequenceNumber` (all of them through the
    /// newest when nil), flagged as an answer to a NACK (a repair round): whatever the receiver is missing
    /// in that span, any that many of these repairs that arrive rebuild it. A span of one packet is a copy
    /// of it that the receiver's decoder learns exactly (a retransmission carries fresh header extensions,
    /// so it would not). Returns false when `sequenceNumber` is no longer kept or the span is wider than
    /// ``FECRepairHeader/maximumSources``.
    public mutating func writeRepair(since sequenceNumber: UInt16, count: Int? = nil, into buffer: inout ByteBuffer) -> Bool {
        guard let kept = self.sourcesSince(sequenceNumber) else { return false }
        let sources = min(kept, max(1, count ?? kept))
        guard sources <= FECRepairHeader.maximumSources else { return false }
        // The span ends `kept - sources` packets behind the newest.
        let newer = kept - sources
        var symbolLength = 0
        for back in newer..<kept { symbolLength = max(symbolLength, self.lengths[self.slot(back: back)] + 2) }
        self.writeRepair(sources: sources, skippingNewest: newer, symbolLength: symbolLength, answersNACK: true, into: &buffer)
        return true
    }

    /// The slot of the packet `back` places behind the newest.
    private func slot(back: Int) -> Int { (self.head - 1 - back + 2 * self.allocated) % self.allocated }

    /// Writes the header and the symbol over `sources` kept packets ending `skippingNewest` behind the newest.
    private mutating func writeRepair(
        sources: Int, skippingNewest: Int, symbolLength: Int, answersNACK: Bool, into buffer: inout ByteBuffer
    ) {
        let firstSlot = self.slot(back: skippingNewest + sources - 1)
        let id = self.nextRepairID
        self.nextRepairID = (self.nextRepairID &+ 1) & 0x7F
        FECRepairHeader(
            firstSequenceNumber: self.sequenceNumbers[firstSlot], sourceCount: sources, repairID: id,
            answersNACK: answersNACK
        ).write(into: &buffer)
        let slotBytes = self.slotBytes
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: symbolLength) { out in
            let symbol = UnsafeMutableRawBufferPointer(rebasing: out[0..<symbolLength])
            symbol.initializeMemory(as: UInt8.self, repeating: 0)
            self.slab.withUnsafeBytes { slab in
                for offset in 0..<sources {
                    let slot = (firstSlot + offset) % self.allocated
                    let start = slot * slotBytes
                    let source = UnsafeRawBufferPointer(rebasing: slab[start..<(start + self.lengths[slot] + 2)])
                    CauchyCode.accumulate(
                        source, source: Int(self.sequenceNumbers[slot] % 128), repair: Int(id), into: symbol)
                }
            }
            return symbolLength
        }
    }
}

/// The receiving side: keeps the recent source packets and the repair packets that still cover a missing
/// one, and solves for the missing packets whenever the equations allow (Gaussian elimination over
/// GF(2⁸); any set of repair packets whose windows cover the same `e` missing packets solves them).
///
/// Each repair equation is kept reduced by the sources known when it came and those that become known
/// later (arriving late, or recovered), so solving only works on the unknowns. Equations and sources
/// older than ``horizon`` packets behind the newest are dropped. Bad repair packets (a window that
/// overlaps a source longer than the symbol) are counted and dropped.
///
/// Sources are kept only from the first repair packet (or the first loss, ``startRecording(from:)``) on:
/// a stream on a clean link (the sender adds repair only when the link loses packets) costs no copies.
/// Repair windows reaching back before that point are discarded, since the packets there arrived
/// unrecorded. A record that sees no repair for ``horizon`` packets stops (and frees its copies): the
/// sender answered that loss with retransmissions, not repairs.
public struct SlidingWindowFECDecoder {
    struct Equation {
        var first: Int64
        var count: Int
        var row: Int
        var residue: [UInt8]
    }

    /// Source packets kept behind the newest.
    public let horizon: Int64
    /// Repair equations are dropped once their window ends this many packets behind the newest source.
    static let equationHorizon: Int64 = 64
    /// Most equations kept (the oldest go first).
    static let maximumEquations = 48
    private var sequences = SequenceNumberUnwrapper()
    /// Known source symbols (`length₁₆ ‖ packet`) by extended sequence number.
    private var known: [Int64: [UInt8]] = [:]
    /// The first source recorded (the one after the newest when the first repair came); nil before.
    private var recordedFrom: Int64?
    /// The newest source when the record started or the last repair came.
    private var lastRepairAt: Int64 = 0
    private var equations: [Equation] = []
    /// Packets recovered, repair packets received, and repair packets that were useless or malformed.
    public private(set) var packetsRecovered = 0
    public private(set) var repairsReceived = 0
    public private(set) var repairsDiscarded = 0

    public init(horizon: Int = 128) {
        self.horizon = Int64(max(horizon, FECRepairHeader.maximumSources))
    }

    /// Whether sources are kept: since the first repair packet, or since ``startRecording(from:)``.
    public var isActive: Bool { self.recordedFrom != nil }

    /// Keeps sources from `sequenceNumber` on, before any repair came: the receiver saw its first loss
    /// there, and repairs answering its NACK will cover that packet and the ones after it.
    public mutating func startRecording(from sequenceNumber: UInt16) {
        guard self.recordedFrom == nil else { return }
        self.recordedFrom = self.sequences.unwrap(sequenceNumber)
        self.lastRepairAt = self.sequences.highest ?? 0
    }

    /// Repair equations in hand that still have unknowns: each will rebuild one missing packet once
    /// enough others arrive. Counts every equation; a receiver that gives packets up should use
    /// ``pendingEquations(stillMissing:)``.
    public var pendingEquations: Int { self.equations.count }

    /// The repair equations in hand that can still rebuild a packet the receiver misses: all of them, less
    /// one for each packet they cover that is unknown here but no longer missing for the receiver
    /// (`stillMissing` false: forgotten before a keyframe, past its deadline, given up). Such a packet will
    /// never arrive, so it takes up an equation of its own: two equations over it and one wanted packet
    /// rebuild the wanted one, one equation rebuilds nothing. Counting that equation as in hand held back the
    /// NACKs of a keyframe's packets for 300 ms after the keyframe's first packet made the receiver forget
    /// the frames before it.
    public func pendingEquations(stillMissing: (UInt16) -> Bool) -> Int {
        guard let first = self.equations.lazy.map(\.first).min(),
            let end = self.equations.lazy.map({ $0.first + Int64($0.count) }).max()
        else { return 0 }
        var abandoned = 0
        for sequence in first..<end where self.known[sequence] == nil {
            let wanted = stillMissing(UInt16(truncatingIfNeeded: sequence))
            if !wanted, self.equations.contains(where: { sequence >= $0.first && sequence < $0.first + Int64($0.count) }) {
                abandoned += 1
            }
        }
        return max(0, self.equations.count - abandoned)
    }

    /// Packet `sequenceNumber` arrived in a form that is not its source symbol (a retransmission carries
    /// fresh header extensions): the equations covering it can no longer be reduced by it, so they are
    /// dropped rather than left pending on an unknown the receiver does not miss.
    public mutating func sourceRecoveredElsewhere(sequenceNumber: UInt16) {
        guard self.sequences.highest != nil else { return }
        let sequence = self.sequences.peek(sequenceNumber)
        guard self.known[sequence] == nil else { return }
        self.equations.removeAll { sequence >= $0.first && sequence < $0.first + Int64($0.count) }
    }

    /// Drops the equations that cover only packets before `sequenceNumber` (a keyframe made them
    /// irrelevant to the decoder), so they no longer count as pending.
    public mutating func forgetEquations(before sequenceNumber: UInt16) {
        guard self.sequences.highest != nil else { return }
        let limit = self.sequences.peek(sequenceNumber)
        self.equations.removeAll { $0.first + Int64($0.count) <= limit }
    }

    /// A source packet (the RTP packet as received, after SRTP) arrived.
    public mutating func sourceReceived(_ packet: ByteBuffer, sequenceNumber: UInt16) {
        let sequence = self.sequences.unwrap(sequenceNumber)
        guard let recordedFrom = self.recordedFrom, sequence >= recordedFrom, self.known[sequence] == nil else { return }
        if sequence - self.lastRepairAt > self.horizon {
            // No repair for a horizon: the link gets none; stop copying every packet.
            self.recordedFrom = nil
            self.known = [:]
            self.equations = []
            return
        }
        var symbol = [UInt8](repeating: 0, count: packet.readableBytes + 2)
        symbol[0] = UInt8(truncatingIfNeeded: packet.readableBytes >> 8)
        symbol[1] = UInt8(truncatingIfNeeded: packet.readableBytes)
        packet.withUnsafeReadableBytes { bytes in
            symbol.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: 2).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        }
        self.learn(symbol, sequence: sequence)
        self.prune()
    }

    /// A repair packet's payload arrived; returns the source packets it let the decoder recover (their RTP
    /// bytes as sent), oldest first.
    public mutating func repairReceived(_ payload: ByteBuffer) -> [ByteBuffer] {
        self.repairsReceived += 1
        guard let header = try? FECRepairHeader(payload) else {
            self.repairsDiscarded += 1
            return []
        }
        // The record starts after the newest source seen before this repair (read before the repair's own
        // window moves the newest along: the packets it covers past that point were lost, not missed).
        if self.recordedFrom == nil {
            self.recordedFrom = self.sequences.highest.map { $0 + 1 } ?? Int64(header.firstSequenceNumber)
        }
        let first = self.sequences.unwrap(header.firstSequenceNumber)
        self.lastRepairAt = self.sequences.highest ?? first
        guard let recordedFrom = self.recordedFrom, first >= recordedFrom else {
            self.repairsDiscarded += 1  // it covers packets that arrived before anything was recorded
            return []
        }
        let symbolBytes = payload.readableBytes - FECRepairHeader.length
        var residue = [UInt8](repeating: 0, count: symbolBytes)
        payload.withUnsafeReadableBytes { bytes in
            residue.withUnsafeMutableBytes {
                $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[FECRepairHeader.length...]))
            }
        }
        var equation = Equation(first: first, count: header.sourceCount, row: Int(header.repairID), residue: residue)
        var unknown = 0
        for sequence in first..<(first + Int64(header.sourceCount)) {
            if let symbol = self.known[sequence] {
                guard Self.subtract(symbol, sequence: sequence, from: &equation) else {
                    self.repairsDiscarded += 1
                    return []
                }
            } else {
                unknown += 1
            }
        }
        guard unknown > 0 else {
            self.repairsDiscarded += 1  // everything it covers already arrived
            return []
        }
        self.equations.append(equation)
        let recovered = self.solve()
        self.prune()
        return recovered
    }

    // MARK: - Internals

    /// Removes `c(row, sequence) · symbol` from the equation's residue; false if the symbol is longer.
    private static func subtract(_ symbol: [UInt8], sequence: Int64, from equation: inout Equation) -> Bool {
        guard symbol.count <= equation.residue.count else { return false }
        let coefficient = CauchyCode.coefficient(repair: equation.row, source: Int(sequence & 127))
        equation.residue.withUnsafeMutableBytes { out in
            symbol.withUnsafeBytes { GF256.multiplyAdd(coefficient, $0, into: out) }
        }
        return true
    }

    /// A source became known: remember it and take it out of every equation covering it.
    private mutating func learn(_ symbol: [UInt8], sequence: Int64) {
        self.known[sequence] = symbol
        var index = 0
        while index < self.equations.count {
            let equation = self.equations[index]
            if sequence >= equation.first, sequence < equation.first + Int64(equation.count) {
                if !Self.subtract(symbol, sequence: sequence, from: &self.equations[index]) {
                    self.equations.remove(at: index)
                    self.repairsDiscarded += 1
                    continue
                }
            }
            index += 1
        }
    }

    /// Gaussian elimination over the unknowns the equations cover; learns and returns every source whose
    /// row reduces to a single unknown.
    private mutating func solve() -> [ByteBuffer] {
        var unknowns: [Int64] = []
        for equation in self.equations {
            for sequence in equation.first..<(equation.first + Int64(equation.count))
            where self.known[sequence] == nil && !unknowns.contains(sequence) {
                unknowns.append(sequence)
            }
        }
        guard !unknowns.isEmpty else { return [] }
        unknowns.sort()
        let coefficients: [[UInt8]] = self.equations.map { equation in
            unknowns.map { sequence in
                sequence >= equation.first && sequence < equation.first + Int64(equation.count)
                    ? CauchyCode.coefficient(repair: equation.row, source: Int(sequence & 127)) : 0
            }
        }
        // A dry run on the coefficients alone (cheap) tells whether anything is solvable before the
        // symbols (a packet long each) are combined.
        var dryRun = coefficients
        var none: [[UInt8]] = []
        guard !GF256.eliminate(&dryRun, &none, columns: unknowns.count).isEmpty else { return [] }
        var matrix = coefficients
        var residues = self.equations.map(\.residue)
        let length = residues.map(\.count).max() ?? 0
        for index in residues.indices where residues[index].count < length {
            residues[index] += [UInt8](repeating: 0, count: length - residues[index].count)
        }
        let solved = GF256.eliminate(&matrix, &residues, columns: unknowns.count)
        var recovered: [ByteBuffer] = []
        for (column, row) in solved {
            let symbol = residues[row]
            let packetLength = symbol.count >= 2 ? Int(symbol[0]) << 8 | Int(symbol[1]) : -1
            guard packetLength >= 12, packetLength + 2 <= symbol.count else {
                self.repairsDiscarded += 1
                continue
            }
            let trimmed = Array(symbol[0..<(packetLength + 2)])
            self.learn(trimmed, sequence: unknowns[column])
            self.packetsRecovered += 1
            recovered.append(ByteBuffer(bytes: trimmed[2...]))
        }
        // Equations with nothing unknown left are spent.
        self.equations.removeAll { equation in
            (equation.first..<(equation.first + Int64(equation.count))).allSatisfy { self.known[$0] != nil }
        }
        return recovered
    }

    private mutating func prune() {
        guard let newest = self.sequences.highest else { return }
        let oldest = newest - self.horizon
        if self.known.count > Int(self.horizon) + 64 {
            self.known = self.known.filter { $0.key >= oldest }
        }
        // An equation still unsolved this far behind is for packets too old to matter.
        let equationsFrom = newest - Self.equationHorizon
        self.equations.removeAll { $0.first + Int64($0.count) <= equationsFrom }
        if self.equations.count > Self.maximumEquations {
            self.equations.removeFirst(self.equations.count - Self.maximumEquations)
        }
    }
}
