#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Measurements on decoded PCM used by the Opus tests.
enum AudioAnalysis {
    /// Frequency from the number of upward zero crossings per second.
    static func zeroCrossingFrequency(_ samples: ArraySlice<Int16>, sampleRate: Int) -> Double {
        var crossings = 0
        var previous = samples.first ?? 0
        for sample in samples.dropFirst() {
            if previous < 0, sample >= 0 { crossings += 1 }
            previous = sample
        }
        return Double(crossings) * Double(sampleRate) / Double(samples.count)
    }

    static func rms(_ samples: ArraySlice<Int16>) -> Double {
        guard !samples.isEmpty else { return 0 }
        var sum = 0.0
        for sample in samples { sum += Double(sample) * Double(sample) }
        return (sum / Double(samples.count)).squareRoot()
    }

    /// Sum of squared differences between two equally long runs of samples.
    static func squaredError(_ a: ArraySlice<Int16>, _ b: ArraySlice<Int16>) -> Double {
        var sum = 0.0
        for (x, y) in zip(a, b) {
            let d = Double(x) - Double(y)
            sum += d * d
        }
        return sum
    }

    /// A voiced-speech-like signal: a 140–180 Hz fundamental with gliding pitch, five harmonics, and a
    /// 3 Hz syllable envelope. SILK codes it as active speech, so the encoder emits LBRR data.
    static func speechLike(samples count: Int, sampleRate: Int = 48_000) -> [Int16] {
        var out = [Int16](repeating: 0, count: count)
        var phase = 0.0
        for n in 0..<count {
            let t = Double(n) / Double(sampleRate)
            let pitch = 160 + 20 * sin(2 * Double.pi * 1.3 * t)
            phase += 2 * Double.pi * pitch / Double(sampleRate)
            var value = 0.0
            for harmonic in 1...5 {
                value += sin(Double(harmonic) * phase) / Double(harmonic)
            }
            let envelope = 0.3 + 0.7 * abs(sin(2 * Double.pi * 3 * t))
            out[n] = Int16((value * envelope * 7000).rounded())
        }
        return out
    }
}
