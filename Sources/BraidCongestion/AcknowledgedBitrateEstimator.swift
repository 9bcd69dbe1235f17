/// Measures the rate at which the receiver acknowledged bytes: the "incoming bitrate" `R_hat` of
/// draft-ietf-rmcat-gcc-02 §5.5, computed by the sender from transport-wide feedback.
///
/// Received bytes are binned by arrival time into ``bucketCount`` buckets of ``bucketUs`` each, held in
/// a ring allocated once at init, so recording never allocates and late (reordered) reports still land
/// in the right bucket while it is inside the window. The rate is the bytes in the window divided by
/// the time the window spans, which is shorter while the estimator warms up.
public struct AcknowledgedBitrateEstimator: Sendable {
    /// Width of one bucket (µs).
    public let bucketUs: Int64
    /// Number of buckets in the window.
    public let bucketCount: Int

    /// A report this many buckets away from the newest one means the receiver's clock jumped.
    static let clockJumpBuckets: Int64 = 200

    private var bytes: [Int]
    private var bucketIndex: [Int64]
    private var newestBucket: Int64?
    private var oldestBucket: Int64?

    /// Creates an estimator with a window of `bucketCount × bucketUs`; 500 ms by default.
    public init(bucketUs: Int64 = 50_000, bucketCount: Int = 10) {
        self.bucketUs = max(1_000, bucketUs)
        self.bucketCount = max(2, bucketCount)
        bytes = Array(repeating: 0, count: self.bucketCount)
        bucketIndex = Array(repeating: Int64.min, count: self.bucketCount)
    }

    /// Records `size` bytes that arrived at `arrivalTimeUs` (receiver clock).
    public mutating func add(arrivalTimeUs: Int64, size: Int) {
        guard size > 0 else { return }
        let bucket = arrivalTimeUs.dividedRoundingDown(by: bucketUs)
        if let newest = newestBucket {
            guard let distance = checkedDifference(bucket, newest), abs(distance) <= Self.clockJumpBuckets else {
                // The receiver's clock jumped: start over instead of dropping everything from now on.
                reset()
                return add(arrivalTimeUs: arrivalTimeUs, size: size)
            }
            // Too old for the window: drop.
            if distance <= -Int64(bucketCount) { return }
        }
        let slot = Int(bucket.modPositive(Int64(bucketCount)))
        if bucketIndex[slot] != bucket {
            bucketIndex[slot] = bucket
            bytes[slot] = 0
        }
        bytes[slot] = bytes[slot] > Int.max - size ? Int.max : bytes[slot] + size
        newestBucket = max(newestBucket ?? bucket, bucket)
        oldestBucket = min(oldestBucket ?? bucket, bucket)
    }

    /// The acknowledged bitrate over the window in bits per second, or `nil` until the data spans
    /// more than one bucket (a single burst says nothing about a rate).
    public var bitrate: Double? {
        guard let newest = newestBucket, let oldest = oldestBucket else { return nil }
        let first = max(oldest, newest &- Int64(bucketCount) &+ 1)
        guard newest > first else { return nil }
        var total = 0.0
        for slot in 0..<bucketCount where bucketIndex[slot] >= first && bucketIndex[slot] <= newest {
            total += Double(bytes[slot])
        }
        // The newest bucket is still filling; count it as half its width.
        let spanUs = (Double(newest &- first) + 0.5) * Double(bucketUs)
        return total * 8 / (spanUs / 1_000_000)
    }

    /// Forgets everything.
    public mutating func reset() {
        for slot in 0..<bucketCount {
            bytes[slot] = 0
            bucketIndex[slot] = Int64.min
        }
        newestBucket = nil
        oldestBucket = nil
    }
}

extension Int64 {
    /// Floor division that stays correct for negative values (receiver clocks may be anywhere).
    @inlinable
    func dividedRoundingDown(by divisor: Int64) -> Int64 {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }

    /// Remainder in `0..<modulus` for a positive modulus.
    @inlinable
    func modPositive(_ modulus: Int64) -> Int64 {
        let remainder = self % modulus
        return remainder < 0 ? remainder + modulus : remainder
    }
}
