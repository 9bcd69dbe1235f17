internal import CVPX

extension CodecError {
    /// Maps a failing `vpx_codec_err_t` to a typed error, with libvpx's detail text when it has one.
    @inline(never)
    static func vpx(
        _ status: vpx_codec_err_t,
        _ what: String,
        context: UnsafeMutablePointer<vpx_codec_ctx_t>? = nil,
        file: StaticString = #fileID,
        line: UInt = #line
    ) -> CodecError {
        let code: Code
        switch status {
        case VPX_CODEC_MEM_ERROR: code = .allocationFailed
        case VPX_CODEC_ABI_MISMATCH, VPX_CODEC_INCAPABLE: code = .incapable
        case VPX_CODEC_UNSUP_BITSTREAM, VPX_CODEC_UNSUP_FEATURE: code = .unsupportedBitstream
        case VPX_CODEC_CORRUPT_FRAME: code = .corruptFrame
        case VPX_CODEC_INVALID_PARAM: code = .badArgument
        default: code = .internalError
        }
        var text = vpx_codec_err_to_string(status).map { String(cString: $0) } ?? "unknown"
        if let context, let detail = vpx_codec_error_detail(context) {
            text += " (\(String(cString: detail)))"
        }
        return CodecError(
            code,
            "\(what): \(text)",
            libraryStatus: Int32(bitPattern: status.rawValue),
            file: file,
            line: line
        )
    }
}
