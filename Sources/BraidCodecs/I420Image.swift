#if canImport(Glibc)
    internal import Glibc  // log10
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// A read-only view of an 8-bit I420 (YUV 4:2:0 planar) picture whose memory someone else owns.
///
/// The view does not keep the memory alive: a view from ``VP8Decoder`` is valid until that decoder's
/// next call, one from ``I420Buffer/withImage(_:)`` only inside the closure. Chroma planes are
/// `(width + 1) / 2` × `(height + 1) / 2`.
public struct I420Image {
    /// Picture width in pixels.
    public let width: Int
    /// Picture height in pixels.
    public let height: Int
    /// Luma plane: `height` rows of `width` bytes, `yStride` bytes apart.
    public let y: UnsafeBufferPointer<UInt8>
    /// Bytes from one luma row to the next.
    public let yStride: Int
    /// Cb plane: ``chromaHeight`` rows of ``chromaWidth`` bytes, `uStride` bytes apart.
    public let u: UnsafeBufferPointer<UInt8>
    /// Bytes from one Cb row to the next.
    public let uStride: Int
    /// Cr plane: ``chromaHeight`` rows of ``chromaWidth`` bytes, `vStride` bytes apart.
    public let v: UnsafeBufferPointer<UInt8>
    /// Bytes from one Cr row to the next.
    public let vStride: Int

    /// Width of the chroma planes.
    public var chromaWidth: Int { (self.width + 1) / 2 }
    /// Height of the chroma planes.
    public var chromaHeight: Int { (self.height + 1) / 2 }

    /// Wraps caller-owned planes after checking that every row lies inside its buffer.
    /// - Throws: ``CodecError/Code/badArgument`` for a non-positive size, a stride shorter than a
    ///   row, or a plane too short for its rows.
    public init(
        width: Int,
        height: Int,
        y: UnsafeBufferPointer<UInt8>,
        yStride: Int,
        u: UnsafeBufferPointer<UInt8>,
        uStride: Int,
        v: UnsafeBufferPointer<UInt8>,
        vStride: Int
    ) throws(CodecError) {
        guard width > 0, height > 0, width <= 16384, height <= 16384 else {
            throw CodecError(.badArgument, "image size \(width)x\(height)")
        }
        let chromaWidth = (width + 1) / 2
        let chromaHeight = (height + 1) / 2
        try Self.check(y, stride: yStride, width: width, rows: height, "Y")
        try Self.check(u, stride: uStride, width: chromaWidth, rows: chromaHeight, "U")
        try Self.check(v, stride: vStride, width: chromaWidth, rows: chromaHeight, "V")
        self.init(unchecked: width, height, y, yStride, u, uStride, v, vStride)
    }

    init(
        unchecked width: Int,
        _ height: Int,
        _ y: UnsafeBufferPointer<UInt8>,
        _ yStride: Int,
        _ u: UnsafeBufferPointer<UInt8>,
        _ uStride: Int,
        _ v: UnsafeBufferPointer<UInt8>,
        _ vStride: Int
    ) {
        self.width = width
        self.height = height
        self.y = y
        self.yStride = yStride
        self.u = u
        self.uStride = uStride
        self.v = v
        self.vStride = vStride
    }

    /// Bytes a plane of `rows` rows of `width` bytes, `stride` apart, needs (the last row unpadded),
    /// or nil when that overflows.
    static func planeLength(stride: Int, width: Int, rows: Int) -> Int? {
        let (body, overflow) = stride.multipliedReportingOverflow(by: rows - 1)
        guard !overflow else { return nil }
        let (total, overflow2) = body.addingReportingOverflow(width)
        return overflow2 ? nil : total
    }

    private static func check(
        _ plane: UnsafeBufferPointer<UInt8>,
        stride: Int,
        width: Int,
        rows: Int,
        _ name: String
    ) throws(CodecError) {
        guard stride >= width, let needed = Self.planeLength(stride: stride, width: width, rows: rows),
            plane.count >= needed, plane.baseAddress != nil
        else {
            throw CodecError(.badArgument, "\(name) plane of \(plane.count) bytes, stride \(stride), \(width)x\(rows)")
        }
    }

    /// Peak signal-to-noise ratio of the luma planes of `self` and `other`, in dB
    /// (10·log10(255² / MSE)); `Double.infinity` when they are identical.
    /// - Returns: nil when the sizes differ.
    public func lumaPSNR(against other: I420Image) -> Double? {
        guard self.width == other.width, self.height == other.height else { return nil }
        var squaredError = 0.0
        for row in 0..<self.height {
            let a = row * self.yStride
            let b = row * other.yStride
            for column in 0..<self.width {
                let difference = Double(Int(self.y[a + column]) - Int(other.y[b + column]))
                squaredError += difference * difference
            }
        }
        guard squaredError > 0 else { return .infinity }
        let meanSquaredError = squaredError / Double(self.width * self.height)
        return 10 * log10(255 * 255 / meanSquaredError)
    }
}

/// Owned storage for one I420 picture (tightly packed planes), for sources such as ``TestPattern``.
public final class I420Buffer {
    /// Picture width in pixels.
    public let width: Int
    /// Picture height in pixels.
    public let height: Int
    /// Luma samples, `width` per row.
    public var y: [UInt8]
    /// Cb samples, ``chromaWidth`` per row.
    public var u: [UInt8]
    /// Cr samples, ``chromaWidth`` per row.
    public var v: [UInt8]

    /// Width of the chroma planes.
    public var chromaWidth: Int { (self.width + 1) / 2 }
    /// Height of the chroma planes.
    public var chromaHeight: Int { (self.height + 1) / 2 }

    /// Allocates black planes (Y 16, U and V 128: BT.601 video-range black).
    public init(width: Int, height: Int) throws(CodecError) {
        guard width > 0, height > 0, width <= 16384, height <= 16384 else {
            throw CodecError(.badArgument, "image size \(width)x\(height)")
        }
        self.width = width
        self.height = height
        self.y = [UInt8](repeating: 16, count: width * height)
        let chroma = ((width + 1) / 2) * ((height + 1) / 2)
        self.u = [UInt8](repeating: 128, count: chroma)
        self.v = [UInt8](repeating: 128, count: chroma)
    }

    /// Copies `image` (which must have the same size) into this buffer.
    public func copy(from image: I420Image) throws(CodecError) {
        guard image.width == self.width, image.height == self.height else {
            throw CodecError(.badArgument, "copy \(image.width)x\(image.height) into \(self.width)x\(self.height)")
        }
        Self.copyPlane(image.y, image.yStride, into: &self.y, width: self.width, rows: self.height)
        Self.copyPlane(image.u, image.uStride, into: &self.u, width: self.chromaWidth, rows: self.chromaHeight)
        Self.copyPlane(image.v, image.vStride, into: &self.v, width: self.chromaWidth, rows: self.chromaHeight)
    }

    /// Calls `body` with a view of the planes; the view must not escape the closure.
    public func withImage<R, E: Error>(_ body: (I420Image) throws(E) -> R) throws(E) -> R {
        try self.y.withUnsafeBufferPointer { (y) throws(E) -> R in
            try self.u.withUnsafeBufferPointer { (u) throws(E) -> R in
                try self.v.withUnsafeBufferPointer { (v) throws(E) -> R in
                    let image = I420Image(
                        unchecked: self.width,
                        self.height,
                        y,
                        self.width,
                        u,
                        self.chromaWidth,
                        v,
                        self.chromaWidth
                    )
                    return try body(image)
                }
            }
        }
    }

    /// Calls `body` with the Y, U and V planes, writable (tightly packed); they must not escape the closure.
    public func withMutablePlanes<R, E: Error>(
        _ body: (UnsafeMutableBufferPointer<UInt8>, UnsafeMutableBufferPointer<UInt8>, UnsafeMutableBufferPointer<UInt8>) throws(E) -> R
    ) throws(E) -> R {
        try self.y.withUnsafeMutableBufferPointer { (y) throws(E) -> R in
            try self.u.withUnsafeMutableBufferPointer { (u) throws(E) -> R in
                try self.v.withUnsafeMutableBufferPointer { (v) throws(E) -> R in try body(y, u, v) }
            }
        }
    }

    private static func copyPlane(
        _ source: UnsafeBufferPointer<UInt8>,
        _ stride: Int,
        into destination: inout [UInt8],
        width: Int,
        rows: Int
    ) {
        for row in 0..<rows {
            for column in 0..<width {
                destination[row * width + column] = source[row * stride + column]
            }
        }
    }
}
