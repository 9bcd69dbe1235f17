internal import CBraidShims
internal import COpus

/// An Opus decoder (RFC 6716) over libopus, with packet loss concealment and in-band FEC recovery.
///
/// Owns one `OpusDecoder *`, freed in `deinit`. Every call decodes into a PCM buffer the caller
/// supplies and allocates nothing. Not thread-safe: use one decoder from one isolation domain.
public final class OpusDecoder {
    /// The result of ``decodeFEC(from:frameSamples:into:)``.
    public struct FECResult: Hashable, Sendable {
        /// Samples per channel written (always the requested `frameSamples`).
        public let samplesPerChannel: Int
        /// True when the packet carried LBRR data, so the audio is a real (low-bitrate) copy of the
        /// lost frame; false when libopus fell back to concealment.
        public let recoveredFromLBRR: Bool
    }

    // Allocated by this; freed in deinit.
    private let state: OpaquePointer
    /// Rate of the decoded PCM.
    public let sampleRate: OpusSampleRate
    /// Channels of the decoded PCM, interleaved (a mono packet is duplicated into stereo output and
    /// a stereo packet downmixed for mono output, by libopus).
    public let channels: OpusChannels

    /// The longest frame a packet can hold (RFC 6716 §3.2.5: 120 ms), in samples per channel.
    public var maximumSamplesPerChannel: Int { self.sampleRate.samples(milliseconds: 120) }

    /// Creates a decoder that outputs `channels` at `sampleRate`, whatever the packets were coded with.
    public init(sampleRate: OpusSampleRate = .hz48000, channels: OpusChannels = .mono) throws(CodecError) {
        var status: Int32 = OPUS_OK
        guard let state = opus_decoder_create(sampleRate.rawValue, channels.rawValue, &status), status == OPUS_OK
        else {
            throw CodecError.opus(status == OPUS_OK ? OPUS_ALLOC_FAIL : status, "opus_decoder_create")
        }
        self.state = state
        self.sampleRate = sampleRate
        self.channels = channels
    }

    deinit {
        opus_decoder_destroy(self.state)
    }

    /// Decodes one packet into interleaved PCM.
    ///
    /// - Parameters:
    ///   - packet: a complete Opus packet (RFC 6716 §3).
    ///   - pcm: room for the packet's duration times ``channels``; 120 ms always suffices.
    /// - Returns: samples per channel written.
    /// - Throws: ``CodecError/Code/invalidPacket`` for malformed data, ``CodecError/Code/bufferTooSmall``
    ///   when `pcm` cannot hold the decoded audio.
    public func decode(packet: UnsafeRawBufferPointer, into pcm: UnsafeMutableBufferPointer<Int16>) throws(CodecError)
        -> Int
    {
        let (data, length) = try Self.checked(packet)
        // Check the duration first so a short buffer is a typed error before libopus sees it.
        let samples = opus_decoder_get_nb_samples(self.state, data, length)
        guard samples > 0 else {
            throw CodecError.opus(samples < 0 ? samples : OPUS_INVALID_PACKET, "opus_decoder_get_nb_samples")
        }
        return try self.run(data, length, samplesPerChannel: Int(samples), into: pcm, fec: false)
    }

    /// Conceals one lost frame (packet loss concealment, RFC 6716 §4.4).
    ///
    /// - Parameters:
    ///   - frameSamples: samples per channel that were lost: a multiple of 2.5 ms, at most 120 ms.
    ///     Use the duration of the last packet (``lastPacketDuration()``) when unsure.
    ///   - pcm: room for `frameSamples` × ``channels`` samples.
    /// - Returns: samples per channel written (`frameSamples`).
    public func decodeLost(frameSamples: Int, into pcm: UnsafeMutableBufferPointer<Int16>) throws(CodecError) -> Int {
        try self.run(nil, 0, samplesPerChannel: frameSamples, into: pcm, fec: false)
    }

    /// Recovers the frame before `nextPacket` from the LBRR (in-band FEC) data `nextPacket` carries.
    ///
    /// Call it when packet N is lost and packet N+1 has arrived, then decode N+1 normally with
    /// ``decode(packet:into:)``. When N+1 carries no LBRR data libopus conceals instead, and
    /// ``FECResult/recoveredFromLBRR`` is false.
    /// - Parameters:
    ///   - nextPacket: the packet after the lost one.
    ///   - frameSamples: the duration of the lost frame in samples per channel (a multiple of 2.5 ms).
    ///   - pcm: room for `frameSamples` × ``channels`` samples.
    public func decodeFEC(
        from nextPacket: UnsafeRawBufferPointer,
        frameSamples: Int,
        into pcm: UnsafeMutableBufferPointer<Int16>
    ) throws(CodecError) -> FECResult {
        let info = try OpusPacketInfo(packet: nextPacket)
        let (data, length) = try Self.checked(nextPacket)
        let written = try self.run(data, length, samplesPerChannel: frameSamples, into: pcm, fec: true)
        return FECResult(samplesPerChannel: written, recoveredFromLBRR: info.hasLBRR)
    }

    /// Duration of the last decoded or concealed packet, in samples per channel
    /// (`OPUS_GET_LAST_PACKET_DURATION`).
    public func lastPacketDuration() throws(CodecError) -> Int {
        var value: Int32 = 0
        let status = braid_opus_decoder_get_int(
            UnsafeMutableRawPointer(self.state),
            OPUS_GET_LAST_PACKET_DURATION_REQUEST,
            &value
        )
        guard status == OPUS_OK else { throw CodecError.opus(status, "get last packet duration") }
        return Int(value)
    }

    /// Forgets all history, as for a new stream (`OPUS_RESET_STATE`).
    public func reset() throws(CodecError) {
        let status = braid_opus_decoder_reset(UnsafeMutableRawPointer(self.state))
        guard status == OPUS_OK else { throw CodecError.opus(status, "reset") }
    }

    private func run(
        _ data: UnsafePointer<UInt8>?,
        _ length: Int32,
        samplesPerChannel: Int,
        into pcm: UnsafeMutableBufferPointer<Int16>,
        fec: Bool
    ) throws(CodecError) -> Int {
        let quantum = Int(self.sampleRate.rawValue) / 400  // 2.5 ms
        guard samplesPerChannel > 0, samplesPerChannel % quantum == 0,
            samplesPerChannel <= self.maximumSamplesPerChannel
        else {
            throw CodecError(.badArgument, "\(samplesPerChannel) samples is not a multiple of 2.5 ms up to 120 ms")
        }
        let needed = samplesPerChannel * Int(self.channels.rawValue)
        guard let out = pcm.baseAddress, pcm.count >= needed else {
            throw CodecError(.bufferTooSmall, "need \(needed) samples, buffer holds \(pcm.count)")
        }
        let result = opus_decode(self.state, data, length, out, Int32(samplesPerChannel), fec ? 1 : 0)
        guard result >= 0 else { throw CodecError.opus(result, "opus_decode") }
        return Int(result)
    }

    private static func checked(_ packet: UnsafeRawBufferPointer) throws(CodecError) -> (UnsafePointer<UInt8>, Int32) {
        guard let base = packet.baseAddress, packet.count > 0 else {
            throw CodecError(.invalidPacket, "empty Opus packet (use decodeLost for a missing one)")
        }
        guard let length = Int32(exactly: packet.count) else {
            throw CodecError(.invalidPacket, "Opus packet of \(packet.count) bytes")
        }
        return (base.assumingMemoryBound(to: UInt8.self), length)
    }
}

extension OpusDecoder {
    /// Convenience for arrays: decodes `packet` into the start of `pcm`; returns samples per channel.
    public func decode(packet: [UInt8], into pcm: inout [Int16]) throws(CodecError) -> Int {
        try Self.bridge(packet, &pcm) { bytes, out throws(CodecError) in try self.decode(packet: bytes, into: out) }
    }

    /// Convenience for arrays; see ``decodeLost(frameSamples:into:)``.
    public func decodeLost(frameSamples: Int, into pcm: inout [Int16]) throws(CodecError) -> Int {
        try Self.bridge([], &pcm) { _, out throws(CodecError) in
            try self.decodeLost(frameSamples: frameSamples, into: out)
        }
    }

    /// Convenience for arrays; see ``decodeFEC(from:frameSamples:into:)``.
    public func decodeFEC(from nextPacket: [UInt8], frameSamples: Int, into pcm: inout [Int16]) throws(CodecError)
        -> FECResult
    {
        try Self.bridge(nextPacket, &pcm) { bytes, out throws(CodecError) in
            try self.decodeFEC(from: bytes, frameSamples: frameSamples, into: out)
        }
    }

    private static func bridge<R>(
        _ packet: [UInt8],
        _ pcm: inout [Int16],
        _ body: (UnsafeRawBufferPointer, UnsafeMutableBufferPointer<Int16>) throws(CodecError) -> R
    ) throws(CodecError) -> R {
        var result: Result<R, CodecError> = .failure(CodecError(.internalError, "not run"))
        packet.withUnsafeBytes { bytes in
            pcm.withUnsafeMutableBufferPointer { out in
                do throws(CodecError) { result = .success(try body(bytes, out)) } catch { result = .failure(error) }
            }
        }
        return try result.get()
    }
}
