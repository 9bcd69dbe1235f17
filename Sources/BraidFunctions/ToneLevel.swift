import Foundation

/// Amplitude of the `frequency` component of `samples` (full scale 1.0), by the Goertzel algorithm: how
/// the mix's tests (and anyone checking a mix by ear without ears) tell which inputs a mix holds.
public func toneAmplitude(_ samples: ArraySlice<Int16>, frequency: Double, sampleRate: Double = 48_000) -> Double {
    guard !samples.isEmpty else { return 0 }
    let coefficient = 2 * cos(2 * Double.pi * frequency / sampleRate)
    var (previous, beforePrevious) = (0.0, 0.0)
    for sample in samples {
        let current = Double(sample) / 32768 + coefficient * previous - beforePrevious
        beforePrevious = previous
        previous = current
    }
    let power = previous * previous + beforePrevious * beforePrevious - coefficient * previous * beforePrevious
    return 2 * power.squareRoot() / Double(samples.count)
}
