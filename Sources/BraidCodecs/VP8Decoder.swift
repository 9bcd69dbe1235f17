internal import CBraidShims
internal import CVPX

/// A VP8 decoder (RFC 6386) over libvpx.
///
/// Owns one `vpx_codec_ctx_t`, destroyed in `deinit`. Decoded pictures are views of libvpx's frame
/// buffers: nothing is copied or allocated per frame by this wrapper. Not thread-safe.
public final class VP8Decoder {
    /// One decoded picture.
    public struct DecodedFrame {
        /// The picture; valid until the next call of ``VP8Decoder/decode(_:)`` or until the decoder is freed.
        public let image: I420Image
        /// True when libvpx reports the picture as corrupted (`VP8D_GET_FRAME_CORRUPTED`): it was
        /// predicted from a reference that was lost or damaged. Request a keyframe.
        public let isCorrupted: Bool
    }

    // Allocated by this; freed in deinit.
    private let context: UnsafeMutablePointer<vpx_codec_ctx_t>

    /// Creates a decoder using `threads` threads.
    public init(threads: Int = 1) throws(CodecError) {
        guard (1...16).contains(threads) else { throw CodecError(.badArgument, "threads \(threads)") }
        self.context = .allocate(capacity: 1)
        self.context.initialize(to: vpx_codec_ctx_t())
        var config = vpx_codec_dec_cfg_t(threads: UInt32(threads), w: 0, h: 0)
        let status = braid_vpx_codec_dec_init(
            UnsafeMutableRawPointer(self.context),
            UnsafeMutableRawPointer(vpx_codec_vp8_dx()),
            &config,
            0
        )
        guard status == 0 else {
            let error = CodecError.vpx(vpx_codec_err_t(rawValue: UInt32(bitPattern: status)), "vpx_codec_dec_init")
            self.context.deallocate()
            throw error
        }
    }

    deinit {
        vpx_codec_destroy(self.context)
        self.context.deallocate()
    }

    /// Decodes one complete VP8 frame (all partitions, as reassembled from RTP per RFC 7741 §4.5).
    ///
    /// - Returns: the decoded picture, or nil when the frame produced none (a frame with
    ///   `show_frame = 0`, RFC 6386 §9.1).
    /// - Throws: ``CodecError/Code/badArgument`` for empty input; ``CodecError/Code/unsupportedBitstream``
    ///   or ``CodecError/Code/corruptFrame`` when the data is not decodable VP8 (for instance an
    ///   inter frame before any keyframe).
    public func decode(_ frame: UnsafeRawBufferPointer) throws(CodecError) -> DecodedFrame? {
        guard let base = frame.baseAddress, frame.count > 0 else {
            throw CodecError(.badArgument, "empty VP8 frame")
        }
        guard let length = UInt32(exactly: frame.count) else {
            throw CodecError(.badArgument, "VP8 frame of \(frame.count) bytes")
        }
        let status = vpx_codec_decode(self.context, base.assumingMemoryBound(to: UInt8.self), length, nil, 0)
        guard status == VPX_CODEC_OK else { throw CodecError.vpx(status, "vpx_codec_decode", context: self.context) }

        var corrupted: Int32 = 0
        let controlStatus = braid_vpx_codec_control_int_ptr(
            UnsafeMutableRawPointer(self.context),
            Int32(bitPattern: VP8D_GET_FRAME_CORRUPTED.rawValue),
            &corrupted
        )
        var iterator: vpx_codec_iter_t? = nil
        guard let picture = vpx_codec_get_frame(self.context, &iterator) else { return nil }
        let p = picture.pointee
        guard p.fmt == VPX_IMG_FMT_I420, let width = Int(exactly: p.d_w), let height = Int(exactly: p.d_h),
            width > 0, height > 0, p.stride.0 > 0, p.stride.1 > 0, p.stride.2 > 0,
            let y = p.planes.0, let u = p.planes.1, let v = p.planes.2
        else { throw CodecError(.unsupportedBitstream, "decoder output is not 8-bit I420") }
        let chromaWidth = (width + 1) / 2
        let chromaHeight = (height + 1) / 2
        guard
            let yLength = I420Image.planeLength(stride: Int(p.stride.0), width: width, rows: height),
            let uLength = I420Image.planeLength(stride: Int(p.stride.1), width: chromaWidth, rows: chromaHeight),
            let vLength = I420Image.planeLength(stride: Int(p.stride.2), width: chromaWidth, rows: chromaHeight)
        else { throw CodecError(.internalError, "decoder plane sizes overflow") }
        let image = I420Image(
            unchecked: width,
            height,
            UnsafeBufferPointer(start: y, count: yLength),
            Int(p.stride.0),
            UnsafeBufferPointer(start: u, count: uLength),
            Int(p.stride.1),
            UnsafeBufferPointer(start: v, count: vLength),
            Int(p.stride.2)
        )
        return DecodedFrame(image: image, isCorrupted: controlStatus == 0 && corrupted != 0)
    }

    /// Convenience for arrays; the result is valid until the next decode, as for ``decode(_:)``.
    public func decode(_ frame: [UInt8]) throws(CodecError) -> DecodedFrame? {
        var result: Result<DecodedFrame?, CodecError> = .success(nil)
        frame.withUnsafeBytes { bytes in
            do throws(CodecError) { result = .success(try self.decode(bytes)) } catch { result = .failure(error) }
        }
        return try result.get()
    }
}
