internal import CYUV

/// Scaling and drawing on I420 pictures, with libyuv (SIMD box filter; 720p to 360p takes well under a
/// millisecond here).
extension I420Buffer {
    /// A rectangle in luma pixels. Even origin and size keep chroma aligned; odd values are rounded down.
    public struct Rect: Sendable, Hashable {
        public var x: Int
        public var y: Int
        public var width: Int
        public var height: Int

        public init(x: Int, y: Int, width: Int, height: Int) {
            self.x = x
            self.y = y
            self.width = width
            self.height = height
        }
    }

    /// A BT.601 video-range colour.
    public struct Colour: Sendable, Hashable {
        public var y: UInt8
        public var u: UInt8
        public var v: UInt8

        public init(y: UInt8, u: UInt8, v: UInt8) {
            self.y = y
            self.u = u
            self.v = v
        }

        public static let black = Colour(y: 16, u: 128, v: 128)
        public static let white = Colour(y: 235, u: 128, v: 128)
    }

    /// The whole picture.
    public var bounds: Rect { Rect(x: 0, y: 0, width: self.width, height: self.height) }

    /// Scales `image` into `rect` of this buffer (the whole buffer by default), box-filtered.
    /// - Throws: ``CodecError/Code/badArgument`` when `rect` does not lie inside the buffer.
    public func scale(_ image: I420Image, into rect: Rect? = nil) throws(CodecError) {
        let target = try self.aligned(rect ?? self.bounds)
        let chromaWidth = self.chromaWidth
        let width = self.width
        let status = self.withMutablePlanes { y, u, v in
            I420Scale(
                image.y.baseAddress, Int32(image.yStride), image.u.baseAddress, Int32(image.uStride),
                image.v.baseAddress, Int32(image.vStride), Int32(image.width), Int32(image.height),
                y.baseAddress! + target.y * width + target.x, Int32(width),
                u.baseAddress! + target.y / 2 * chromaWidth + target.x / 2, Int32(chromaWidth),
                v.baseAddress! + target.y / 2 * chromaWidth + target.x / 2, Int32(chromaWidth),
                Int32(target.width), Int32(target.height), kFilterBox)
        }
        guard status == 0 else { throw CodecError(.internalError, "I420Scale returned \(status)") }
    }

    /// Paints `rect` (the whole buffer by default) in `colour`.
    /// - Throws: ``CodecError/Code/badArgument`` when `rect` does not lie inside the buffer.
    public func fill(_ colour: Colour, in rect: Rect? = nil) throws(CodecError) {
        let target = try self.aligned(rect ?? self.bounds)
        let chromaWidth = self.chromaWidth
        let width = self.width
        let status = self.withMutablePlanes { y, u, v in
            I420Rect(
                y.baseAddress!, Int32(width), u.baseAddress!, Int32(chromaWidth), v.baseAddress!,
                Int32(chromaWidth), Int32(target.x), Int32(target.y), Int32(target.width),
                Int32(target.height), Int32(colour.y), Int32(colour.u), Int32(colour.v))
        }
        guard status == 0 else { throw CodecError(.internalError, "I420Rect returned \(status)") }
    }

    /// Paints a frame `thickness` pixels wide just inside `rect`'s edges.
    public func outline(_ rect: Rect, thickness: Int, colour: Colour) throws(CodecError) {
        let t = max(2, thickness & ~1)
        guard rect.width > 2 * t, rect.height > 2 * t else { return try self.fill(colour, in: rect) }
        try self.fill(colour, in: Rect(x: rect.x, y: rect.y, width: rect.width, height: t))
        try self.fill(colour, in: Rect(x: rect.x, y: rect.y + rect.height - t, width: rect.width, height: t))
        try self.fill(colour, in: Rect(x: rect.x, y: rect.y, width: t, height: rect.height))
        try self.fill(colour, in: Rect(x: rect.x + rect.width - t, y: rect.y, width: t, height: rect.height))
    }

    /// `rect` with even origin and size, checked to lie inside the buffer.
    private func aligned(_ rect: Rect) throws(CodecError) -> Rect {
        let aligned = Rect(x: rect.x & ~1, y: rect.y & ~1, width: rect.width & ~1, height: rect.height & ~1)
        guard aligned.width >= 2, aligned.height >= 2, aligned.x >= 0, aligned.y >= 0,
            aligned.x + aligned.width <= self.width, aligned.y + aligned.height <= self.height
        else {
            throw CodecError(
                .badArgument,
                "rectangle \(rect.width)x\(rect.height)+\(rect.x)+\(rect.y) outside \(self.width)x\(self.height)")
        }
        return aligned
    }
}
