#if canImport(Glibc)
    internal import Glibc  // sin
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// A continuous sine tone as 16-bit PCM, for tests and synthetic publishers.
///
/// The phase carries over between calls, so consecutive frames join without clicks.
public struct SineTone: Sendable {
    /// Tone frequency in Hz.
    public let frequency: Double
    /// Peak amplitude as a fraction of full scale, 0…1.
    public let amplitude: Double
    /// Samples per second per channel.
    public let sampleRate: Int
    /// Interleaved channels; all carry the same tone.
    public let channels: Int
    private var phase = 0.0

    public init(frequency: Double = 440, amplitude: Double = 0.5, sampleRate: Int = 48_000, channels: Int = 1) {
        self.frequency = frequency
        self.amplitude = min(max(amplitude, 0), 1)
        self.sampleRate = max(sampleRate, 1)
        self.channels = max(channels, 1)
    }

    /// Fills `pcm` with the next `pcm.count / channels` samples per channel, the same on every channel.
    public mutating func fill(_ pcm: UnsafeMutableBufferPointer<Int16>) {
        let step = 2 * Double.pi * self.frequency / Double(self.sampleRate)
        let scale = self.amplitude * Double(Int16.max)
        var index = 0
        while index + self.channels <= pcm.count {
            let sample = Int16((sin(self.phase) * scale).rounded())
            for channel in 0..<self.channels {
                pcm[index + channel] = sample
            }
            index += self.channels
            self.phase += step
            if self.phase >= 2 * Double.pi { self.phase -= 2 * Double.pi }
        }
    }

    /// Returns the next `samplesPerChannel` samples per channel, interleaved (allocates; see ``fill(_:)``).
    public mutating func next(samplesPerChannel: Int) -> [Int16] {
        var pcm = [Int16](repeating: 0, count: max(samplesPerChannel, 0) * self.channels)
        pcm.withUnsafeMutableBufferPointer { self.fill($0) }
        return pcm
    }
}

/// A moving I420 test picture: colour bars, a box that moves every frame, and the frame index written
/// in the pixels so a receiver can tell which frame it decoded (for freeze and latency measurements).
///
/// Layout: the top ``blockSize`` rows hold the frame index as 16 black or white blocks (most
/// significant bit first, each ``blockSize`` pixels wide); below are eight vertical 75 % colour bars
/// (BT.601 video range) and a white box that moves 4 pixels right and 2 down per frame.
public struct TestPattern: Sendable {
    /// Picture width in pixels.
    public let width: Int
    /// Picture height in pixels.
    public let height: Int
    /// Side of one frame-index block, in luma pixels: large enough to survive lossy coding.
    public let blockSize: Int
    /// Amplitude of a pseudo-random luma noise over the colour bars that changes every frame (0: none). The
    /// plain pattern compresses to a small fraction of any bitrate an encoder is given; noise, like a
    /// camera's sensor noise, makes each frame cost bits, so a stream reaches its target bitrate. The frame
    /// index blocks and the box stay clean.
    public var noise: UInt8 = 0

    /// Luma, Cb, Cr of the eight bars: white, yellow, cyan, green, magenta, red, blue, black.
    private static let bars: [(UInt8, UInt8, UInt8)] = [
        (180, 128, 128), (162, 44, 142), (131, 156, 44), (112, 72, 58),
        (84, 184, 198), (65, 100, 212), (35, 212, 114), (16, 128, 128),
    ]

    /// - Throws: ``CodecError/Code/badArgument`` when the picture is smaller than 32×32.
    public init(width: Int, height: Int) throws(CodecError) {
        guard width >= 32, height >= 32, width <= 16384, height <= 16384 else {
            throw CodecError(.badArgument, "test pattern size \(width)x\(height), at least 32x32")
        }
        self.width = width
        self.height = height
        self.blockSize = min(16, width / 16)
    }

    /// Draws frame `frameIndex` into `buffer`, which must be ``width`` × ``height``.
    public func render(frameIndex: Int, into buffer: I420Buffer) throws(CodecError) {
        guard buffer.width == self.width, buffer.height == self.height else {
            throw CodecError(
                .badArgument,
                "buffer \(buffer.width)x\(buffer.height), pattern \(self.width)x\(self.height)"
            )
        }
        let chromaWidth = buffer.chromaWidth
        let box = max(8, self.height / 6) & ~1
        let top = self.blockSize
        let boxX = (frameIndex &* 4 % max(self.width - box, 1) + max(self.width - box, 1)) % max(self.width - box, 1)
        let boxRange = max(self.height - top - box, 1)
        let boxY = top + (frameIndex &* 2 % boxRange + boxRange) % boxRange
        let index = UInt16(truncatingIfNeeded: frameIndex)

        for row in 0..<self.height {
            for column in 0..<self.width {
                let luma: UInt8
                if row < top {
                    let bit = column / self.blockSize
                    luma = bit < 16 && (index >> (15 - bit)) & 1 == 1 ? 235 : 16
                } else if (boxX..<boxX + box).contains(column), (boxY..<boxY + box).contains(row) {
                    luma = 235
                } else if self.noise > 0 {
                    // xorshift of the pixel's position and the frame: a fresh grain every frame.
                    var hash = UInt32(truncatingIfNeeded: row &* self.width &+ column) &* 0x9E37_79B9
                        ^ UInt32(truncatingIfNeeded: frameIndex) &* 0x85EB_CA6B
                    hash ^= hash >> 15
                    hash &*= 0x2C1B_3C6D
                    hash ^= hash >> 12
                    let span = 2 * Int(self.noise) + 1
                    let grain = Int(hash % UInt32(span)) - Int(self.noise)
                    luma = UInt8(clamping: Int(Self.bars[column * 8 / self.width].0) + grain)
                } else {
                    luma = Self.bars[column * 8 / self.width].0
                }
                buffer.y[row * self.width + column] = luma
            }
        }
        for row in 0..<buffer.chromaHeight {
            for column in 0..<chromaWidth {
                let lumaRow = row * 2
                let lumaColumn = column * 2
                var cb: UInt8 = 128
                var cr: UInt8 = 128
                let inBox = (boxX..<boxX + box).contains(lumaColumn) && (boxY..<boxY + box).contains(lumaRow)
                if lumaRow >= top, !inBox {
                    let bar = Self.bars[lumaColumn * 8 / self.width]
                    cb = bar.1
                    cr = bar.2
                }
                buffer.u[row * chromaWidth + column] = cb
                buffer.v[row * chromaWidth + column] = cr
            }
        }
    }

    /// Reads back the 16-bit frame index written by ``render(frameIndex:into:)`` (modulo 65536),
    /// from the centre of each block so that coding noise at block edges does not matter.
    /// - Returns: nil when `image` is not this pattern's size.
    public func readFrameIndex(from image: I420Image) -> Int? {
        guard image.width == self.width, image.height == self.height else { return nil }
        let centreRow = self.blockSize / 2
        var value = 0
        for bit in 0..<16 {
            let start = bit * self.blockSize + self.blockSize / 4
            let end = bit * self.blockSize + self.blockSize - self.blockSize / 4
            var sum = 0
            for column in start..<max(end, start + 1) {
                sum += Int(image.y[centreRow * image.yStride + column])
            }
            let mean = sum / max(end - start, 1)
            value = value << 1 | (mean > 125 ? 1 : 0)
        }
        return value
    }
}
