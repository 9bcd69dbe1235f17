// Per-SSRC packet indices and replay windows for the OpenSSL SRTP implementation (SRTPTransform.swift).
//
// The rules are RFC 3711's, and where the RFC leaves a choice they are libsrtp2's, so that both
// implementations accept, reject and number exactly the same packets (the tests check this packet by
// packet against libsrtp):
//
// - the RTP packet index i = 2^16 × ROC + SEQ is estimated from the highest index seen so far
//   (RFC 3711 §3.3.1 and Appendix A), as libsrtp's `srtp_rdbx_estimate_index` does;
// - the SRTP replay window (§3.3.2) is a bit per index over the last `windowLength` indices, the window
//   length being the configured size rounded up to a multiple of 32 as libsrtp's bit vector does;
// - the SRTCP index is the explicit 31-bit index of the trailer (§3.4), with libsrtp's fixed 128-index
//   window whose start moves only when a newer index arrives (`srtp_rdb_t`).
//
// The sending side keeps the same RTP bookkeeping: libsrtp estimates the sender's ROC from the sequence
// numbers it is handed, and refuses an index it already protected unless repeat transmission is allowed.

internal import CBraidShims

/// What a replay check says about a packet index.
enum SRTPReplayVerdict {
    /// Newer than everything seen, or inside the window and not seen yet.
    case fresh
    /// Inside the window and already seen (`srtp_err_status_replay_fail`).
    case replayed
    /// Older than the window (`srtp_err_status_replay_old`).
    case tooOld
}

/// The state one SSRC keeps (RFC 3711 §3.2.1's cryptographic context, minus the session keys, which every
/// SSRC of a session shares: the key derivation rate is 0, so the keys do not depend on the SSRC).
struct SRTPStreamState {
    /// The SSRC this state belongs to.
    var ssrc: UInt32
    /// SRTCP. Sending: the last index sent (the first packet carries 1, as libsrtp's). Receiving: the
    /// first index of the 128-index replay window.
    var rtcpIndex: UInt32
    /// SRTP: the highest packet index accepted, ROC << 16 | SEQ (48 bits).
    var rtpIndex: UInt64
    /// SRTCP replay window, receiving side: bit k stands for index `rtcpIndex + k`.
    var rtcpWindow: UInt128

    init(ssrc: UInt32) {
        self.ssrc = ssrc
        self.rtcpIndex = 0
        self.rtpIndex = 0
        self.rtcpWindow = 0
    }
}

/// Estimates the 48-bit packet index of an RTP sequence number from the highest index accepted so far
/// (RFC 3711 §3.3.1, Appendix A), returning it with its distance from that index.
///
/// libsrtp's rule: while the highest index is at most 2^15, the ROC is taken to be 0 (so a stream starting
/// at a low sequence number can never be guessed one roll *behind*); after that, the index whose ROC is one
/// of ROC − 1, ROC, ROC + 1 that lies closest to the highest index.
@inline(__always)
func srtpEstimateIndex(highest: UInt64, sequence: UInt16) -> (index: UInt64, delta: Int) {
    let s = Int(sequence)
    guard highest > 0x8000 else {
        return (UInt64(sequence), s - Int(highest))
    }
    let roc = UInt32(truncatingIfNeeded: highest >> 16)
    let highestSequence = Int(UInt16(truncatingIfNeeded: highest))
    let guessedROC: UInt32
    let delta: Int
    if highestSequence < 0x8000 {
        if s - highestSequence > 0x8000 {
            guessedROC = roc &- 1
            delta = s - highestSequence - 0x1_0000
        } else {
            guessedROC = roc
            delta = s - highestSequence
        }
    } else {
        if highestSequence - 0x8000 > s {
            guessedROC = roc &+ 1
            delta = s - highestSequence + 0x1_0000
        } else {
            guessedROC = roc
            delta = s - highestSequence
        }
    }
    return (UInt64(guessedROC) << 16 | UInt64(sequence), delta)
}

/// The per-SSRC states of one session direction, with each SSRC's SRTP replay window.
///
/// Storage is manual so that the packet path touches no reference count, no uniqueness check and no
/// exclusivity check: a header (count, capacity, pointers) lives on the heap and this struct is only a
/// pointer to it. States are kept in arrival order and found by a linear scan of the SSRCs, which for the
/// handful of SSRCs a WebRTC session carries (audio, video, simulcast layers) is faster than hashing. A new
/// SSRC grows the storage by doubling: allocation happens when an SSRC is first seen, never per packet.
///
/// The SRTP replay window of state `i` is `wordsPerStream` 64-bit words of `window`, used as a ring: the bit
/// of packet index `n` is bit `n mod ringBits`. `ringBits` is a power of two at least `windowLength`, so
/// moving the window forward clears only the bits it passes over instead of shifting the whole window.
///
/// Owned by one ``SRTPTransform``, which calls ``destroy()`` in its `deinit`.
struct SRTPStreamTable {
    private struct Header {
        var count: Int
        var capacity: Int
        var states: UnsafeMutablePointer<SRTPStreamState>
        var windows: UnsafeMutablePointer<UInt64>
    }

    private let header: UnsafeMutablePointer<Header>
    /// Indices the SRTP replay window covers (libsrtp: the configured size rounded up to a multiple of 32).
    let windowLength: Int
    /// Bits of each SSRC's ring, a power of two ≥ ``windowLength``.
    let ringBits: Int
    private let wordsPerStream: Int

    init(replayWindowSize: Int) {
        self.windowLength = (replayWindowSize + 31) & ~31
        var ring = 64
        while ring < self.windowLength { ring <<= 1 }
        self.ringBits = ring
        self.wordsPerStream = ring / 64
        let capacity = 4
        let states = UnsafeMutablePointer<SRTPStreamState>.allocate(capacity: capacity)
        let windows = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity * self.wordsPerStream)
        self.header = .allocate(capacity: 1)
        self.header.initialize(to: Header(count: 0, capacity: capacity, states: states, windows: windows))
    }

    /// Prefetches the table's header (stage 0), then the first streams' states and replay windows: a
    /// session protecting toward one peer sends one SSRC per m-section.
    func prefetch(stage: Int) {
        if stage == 0 {
            braid_prefetch(self.header)
        } else {
            let header = self.header.pointee
            braid_prefetch(header.states)
            braid_prefetch(header.windows)
        }
    }

    /// Frees the storage. The table must not be used afterwards.
    func destroy() {
        let header = self.header.pointee
        header.states.deinitialize(count: header.count)
        header.states.deallocate()
        header.windows.deallocate()
        self.header.deinitialize(count: 1)
        self.header.deallocate()
    }

    /// How many SSRCs have state.
    var count: Int { self.header.pointee.count }

    /// The slot of `ssrc`, or nil when it has no state yet.
    @inline(__always)
    func find(_ ssrc: UInt32) -> Int? {
        let header = self.header.pointee
        var slot = 0
        while slot < header.count {
            if header.states[slot].ssrc == ssrc { return slot }
            slot += 1
        }
        return nil
    }

    /// The slot of `ssrc`, creating a fresh state (index 0, empty windows) when it has none.
    @inline(__always)
    func findOrInsert(_ ssrc: UInt32) -> Int {
        if let slot = self.find(ssrc) { return slot }
        return self.insert(ssrc)
    }

    /// Creates a fresh state for `ssrc` (which must not have one) and returns its slot.
    @inline(never)
    func insert(_ ssrc: UInt32) -> Int {
        var header = self.header.pointee
        if header.count == header.capacity {
            let capacity = header.capacity * 2
            let states = UnsafeMutablePointer<SRTPStreamState>.allocate(capacity: capacity)
            states.moveInitialize(from: header.states, count: header.count)
            header.states.deallocate()
            let windows = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity * self.wordsPerStream)
            windows.update(from: header.windows, count: header.count * self.wordsPerStream)
            header.windows.deallocate()
            header.states = states
            header.windows = windows
            header.capacity = capacity
        }
        let slot = header.count
        (header.states + slot).initialize(to: SRTPStreamState(ssrc: ssrc))
        (header.windows + slot * self.wordsPerStream).update(repeating: 0, count: self.wordsPerStream)
        header.count += 1
        self.header.pointee = header
        return slot
    }

    /// The state in `slot`, to read and update in place (valid until the next ``insert(_:)``).
    @inline(__always)
    func state(_ slot: Int) -> UnsafeMutablePointer<SRTPStreamState> {
        self.header.pointee.states + slot
    }

    // MARK: SRTP replay window (RFC 3711 §3.3.2; libsrtp srtp_rdbx_check / srtp_rdbx_add_index)

    /// Checks the packet `delta` indices away from the highest accepted one.
    @inline(__always)
    func checkRTP(_ slot: Int, delta: Int) -> SRTPReplayVerdict {
        if delta > 0 { return .fresh }
        if self.windowLength - 1 + delta < 0 { return .tooOld }
        let state = self.state(slot)
        let index = state.pointee.rtpIndex &+ UInt64(bitPattern: Int64(delta))
        let bit = Int(truncatingIfNeeded: index) & (self.ringBits - 1)
        let word = self.header.pointee.windows[slot * self.wordsPerStream + bit >> 6]
        return word & (1 << UInt64(bit & 63)) != 0 ? .replayed : .fresh
    }

    /// Records the packet `delta` indices away from the highest accepted one, moving the window forward when
    /// `delta` is positive. Call after ``checkRTP(_:delta:)`` said `.fresh` (or `.replayed`, for a repeat
    /// transmission, which changes nothing).
    @inline(__always)
    func acceptRTP(_ slot: Int, delta: Int) {
        let state = self.state(slot)
        let window = self.header.pointee.windows + slot * self.wordsPerStream
        let mask = self.ringBits - 1
        let highest = state.pointee.rtpIndex
        let accepted: UInt64
        if delta > 0 {
            if delta >= self.ringBits {
                window.update(repeating: 0, count: self.wordsPerStream)
            } else {
                // Clear the bits of indices highest + 1 ... highest + delta, which the ring last used for
                // indices a whole ring older, now outside the window.
                var position = (Int(truncatingIfNeeded: highest) &+ 1) & mask
                var remaining = delta
                while remaining > 0 {
                    let bit = position & 63
                    let run = min(64 - bit, remaining)
                    let bits: UInt64 = run == 64 ? ~0 : ((1 << UInt64(run)) - 1) << UInt64(bit)
                    window[position >> 6] &= ~bits
                    position = (position + run) & mask
                    remaining -= run
                }
            }
            // libsrtp advances by the delta as a sequence number (it is always below 2^16 here).
            accepted = highest &+ UInt64(UInt16(truncatingIfNeeded: delta))
            state.pointee.rtpIndex = accepted
        } else {
            accepted = highest &+ UInt64(bitPattern: Int64(delta))
        }
        let bit = Int(truncatingIfNeeded: accepted) & mask
        window[bit >> 6] |= 1 << UInt64(bit & 63)
    }

    // MARK: SRTCP replay window (RFC 3711 §3.3.2 for the explicit index; libsrtp srtp_rdb_t)

    /// Checks an SRTCP index against the 128-index window.
    @inline(__always)
    func checkRTCP(_ slot: Int, index: UInt32) -> SRTPReplayVerdict {
        Self.checkRTCP(self.state(slot).pointee, index: index)
    }

    /// Checks an SRTCP index against the window of `state` (also used for an SSRC not seen yet, whose
    /// fresh state accepts every index).
    @inline(__always)
    static func checkRTCP(_ state: SRTPStreamState, index: UInt32) -> SRTPReplayVerdict {
        let start = UInt64(state.rtcpIndex)
        let index = UInt64(index)
        if index >= start + 128 { return .fresh }
        if index < start { return .tooOld }
        return (state.rtcpWindow >> (index - start)) & 1 == 1 ? .replayed : .fresh
    }

    /// Records an SRTCP index the check accepted; a newer index slides the window so that it is the last.
    @inline(__always)
    func acceptRTCP(_ slot: Int, index: UInt32) {
        let state = self.state(slot)
        let start = state.pointee.rtcpIndex
        guard index >= start else { return }
        let delta = index - start
        if delta < 128 {
            state.pointee.rtcpWindow |= 1 << UInt128(delta)
        } else {
            let shift = delta - 127
            state.pointee.rtcpWindow = shift > 127 ? 0 : state.pointee.rtcpWindow >> UInt128(shift)
            state.pointee.rtcpWindow |= 1 << 127
            state.pointee.rtcpIndex = start + shift
        }
    }

    /// The next SRTCP index to send for `slot`, or nil when the 31-bit index is exhausted (libsrtp then
    /// reports `srtp_err_status_key_expired`: the master key must be replaced).
    @inline(__always)
    func nextRTCPIndex(_ slot: Int) -> UInt32? {
        let state = self.state(slot)
        guard state.pointee.rtcpIndex < 0x7fff_ffff else { return nil }
        state.pointee.rtcpIndex += 1
        return state.pointee.rtcpIndex
    }
}
