import BraidClient

/// Why a command-line value was rejected.
public struct LoadArgumentError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The one-line reason, naming the offending text.
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Parsers for the quantities the command line takes: `10%`, `50ms`, `500kbps`, `0.05,0.5`.
///
/// Every parser rejects non-finite and out-of-range values with a ``LoadArgumentError`` naming the text.
public enum Quantities {
    /// A fraction: `10%` → 0.1, `0.1` → 0.1 (0...1).
    public static func fraction(_ text: String) throws(LoadArgumentError) -> Double {
        let trimmed = text.trimmingSpaces
        let value: Double?
        if trimmed.hasSuffix("%") {
            value = Double(trimmed.dropLast()).map { $0 / 100 }
        } else {
            value = Double(trimmed)
        }
        guard let value, value.isFinite, (0...1).contains(value) else {
            throw LoadArgumentError("'\(text)' is not a fraction (0-100% or 0-1)")
        }
        return value
    }

    /// A duration: `50ms`, `1.5s`, `250us`, `2m`; a bare number is milliseconds. Must be 0...1 day.
    public static func duration(_ text: String) throws(LoadArgumentError) -> Duration {
        let trimmed = text.trimmingSpaces
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("s", 1), ("m", 60), ("h", 3600)]
        var seconds: Double?
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            if let number = Double(trimmed.dropLast(suffix.count)) { seconds = number * scale }
            break
        }
        if seconds == nil, let number = Double(trimmed) { seconds = number * 1e-3 }
        guard let seconds, seconds.isFinite, (0...86_400).contains(seconds) else {
            throw LoadArgumentError("'\(text)' is not a duration (e.g. 50ms, 2s, 1m)")
        }
        return .microseconds(Int64((seconds * 1e6).rounded()))
    }

    /// A bit rate: `500kbps`, `2mbps`, `64000bps` or a bare number of bits per second (1 bps...100 Gbps).
    public static func bitRate(_ text: String) throws(LoadArgumentError) -> Int {
        let trimmed = text.trimmingSpaces.lowercased()
        let units: [(String, Double)] = [("kbps", 1e3), ("mbps", 1e6), ("gbps", 1e9), ("bps", 1), ("k", 1e3), ("m", 1e6)]
        var bits: Double?
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            if let number = Double(trimmed.dropLast(suffix.count)) { bits = number * scale }
            break
        }
        if bits == nil, let number = Double(trimmed) { bits = number }
        guard let bits, bits.isFinite, bits >= 1, bits <= 1e11, let value = Int(exactly: bits.rounded()) else {
            throw LoadArgumentError("'\(text)' is not a bit rate (e.g. 500kbps, 2mbps)")
        }
        return value
    }

    /// Gilbert–Elliott parameters `p,r` (each a fraction, `%` allowed; r > 0).
    public static func burst(_ text: String) throws(LoadArgumentError) -> GilbertElliottLoss {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw LoadArgumentError("'\(text)' is not 'p,r' (e.g. 0.05,0.5)") }
        let p = try self.fraction(String(parts[0]))
        let r = try self.fraction(String(parts[1]))
        guard r > 0 else { throw LoadArgumentError("'\(text)': r must be above 0 or a burst never ends") }
        return GilbertElliottLoss(p: p, r: r)
    }
}

extension String {
    var trimmingSpaces: String {
        var slice = Substring(self)
        while slice.first?.isWhitespace == true { slice.removeFirst() }
        while slice.last?.isWhitespace == true { slice.removeLast() }
        return String(slice)
    }
}
