internal import COpus

/// Sample rates libopus accepts, in Hz.
public enum OpusSampleRate: Int32, Sendable, CaseIterable {
    case hz8000 = 8000
    case hz12000 = 12000
    case hz16000 = 16000
    case hz24000 = 24000
    case hz48000 = 48000

    /// Samples per channel in `milliseconds` of audio at this rate.
    public func samples(milliseconds: Int) -> Int { Int(self.rawValue) / 1000 * milliseconds }
}

/// Channel layouts libopus codes (RFC 6716 §3.1: a packet is mono or stereo).
public enum OpusChannels: Int32, Sendable, CaseIterable {
    case mono = 1
    case stereo = 2
}

extension CodecError {
    /// Maps a negative `OPUS_*` status to a typed error.
    @inline(never)
    static func opus(_ status: Int32, _ what: String, file: StaticString = #fileID, line: UInt = #line) -> CodecError {
        let code: Code
        switch status {
        case OPUS_BAD_ARG: code = .badArgument
        case OPUS_BUFFER_TOO_SMALL: code = .bufferTooSmall
        case OPUS_INVALID_PACKET: code = .invalidPacket
        case OPUS_UNIMPLEMENTED: code = .unimplemented
        case OPUS_INVALID_STATE: code = .invalidState
        case OPUS_ALLOC_FAIL: code = .allocationFailed
        default: code = .internalError
        }
        let text = opus_strerror(status).map { String(cString: $0) } ?? "unknown"
        return CodecError(code, "\(what): \(text)", libraryStatus: status, file: file, line: line)
    }
}

/// libopus's soft clipper (`opus_pcm_soft_clip`): float PCM past ±1.0 is bent back smoothly into range
/// instead of being cut, as a mixer's sum needs. Keeps the one value of state libopus carries between
/// frames of a stream.
public struct OpusSoftClipper: Sendable {
    private var memory: Float = 0

    public init() {}

    /// Clips `pcm` (mono, nominal range ±1.0) in place.
    public mutating func apply(_ pcm: UnsafeMutableBufferPointer<Float>) {
        guard let base = pcm.baseAddress, !pcm.isEmpty else { return }
        opus_pcm_soft_clip(base, Int32(pcm.count), 1, &self.memory)
    }
}
