internal import CBraidShims
internal import CVPX

/// A real-time VP8 encoder (RFC 6386) over libvpx, with optional temporal scalability.
///
/// Owns one `vpx_codec_ctx_t` (destroyed in `deinit`), its configuration and one `vpx_image_t`
/// descriptor that is pointed at the caller's planes for each frame, so input is never copied.
/// Encoded frames are handed to a closure while libvpx's output buffer is still valid; nothing is
/// allocated per frame. Not thread-safe: use one encoder from one isolation domain.
///
/// Keyframes are scheduled here rather than by libvpx (`kf_mode` is disabled) so that every keyframe
/// restarts the temporal pattern on layer 0: the first frame, frames after ``requestKeyframe()`` or
/// `forceKeyframe`, and every ``Configuration/maxKeyframeInterval`` frames.
public final class VP8Encoder {
    /// Encoder settings; bitrate and keyframe interval can change later.
    public struct Configuration: Sendable {
        /// Picture width in pixels: even, 16…16383.
        public var width: Int
        /// Picture height in pixels: even, 16…16383.
        public var height: Int
        /// Nominal frame rate; sets the duration of each frame in the 90 kHz timebase.
        public var framesPerSecond: Int
        /// Target bitrate of the whole stream (all temporal layers), in bits per second.
        public var bitrate: Int
        /// At most this many frames between keyframes.
        public var maxKeyframeInterval: Int
        /// Temporal layers, 1…3 (see ``VP8Encoder`` for the patterns).
        public var temporalLayers: Int
        /// libvpx speed (`VP8E_SET_CPUUSED`), -16…16; -6…-8 suit real-time encoding on one core.
        public var cpuUsed: Int
        /// Encoder threads (`g_threads`).
        public var threads: Int
        /// Let rate control drop frames when the buffer is this % below optimal (0 = never drop).
        public var frameDropThreshold: Int
        /// Lowest quantizer rate control may use, 0…63.
        public var minQuantizer: Int
        /// Highest quantizer rate control may use, `minQuantizer`…63; lower caps the worst quality.
        public var maxQuantizer: Int

        public init(
            width: Int,
            height: Int,
            framesPerSecond: Int = 30,
            bitrate: Int = 500_000,
            maxKeyframeInterval: Int = 3000,
            temporalLayers: Int = 1,
            cpuUsed: Int = -6,
            threads: Int = 1,
            frameDropThreshold: Int = 0,
            minQuantizer: Int = 2,
            maxQuantizer: Int = 56
        ) {
            self.width = width
            self.height = height
            self.framesPerSecond = framesPerSecond
            self.bitrate = bitrate
            self.maxKeyframeInterval = maxKeyframeInterval
            self.temporalLayers = temporalLayers
            self.cpuUsed = cpuUsed
            self.threads = threads
            self.frameDropThreshold = frameDropThreshold
            self.minQuantizer = minQuantizer
            self.maxQuantizer = maxQuantizer
        }
    }

    /// One compressed frame, valid only during the closure it is passed to.
    public struct EncodedFrame {
        /// The VP8 frame (RFC 6386 §9), ready to be split into RTP packets (RFC 7741).
        public let data: UnsafeRawBufferPointer
        public let isKeyframe: Bool
        /// Temporal layer (RFC 7741 TID), 0 for the base layer.
        public let temporalLayerID: Int
        /// RFC 7741's Y bit: the frame references only base-layer (TL0) frames, so a receiver can
        /// start decoding this layer here. Always true for keyframes and for TL0 frames.
        public let layerSync: Bool
        /// True when no later frame references this one (RFC 7741's N bit): it can be dropped freely.
        public let isDiscardable: Bool
        /// Presentation time in the 90 kHz RTP video clock, as passed to ``VP8Encoder/encode(_:pts:forceKeyframe:_:)``.
        public let pts: Int64
    }

    /// One step of a temporal pattern: the layer and the libvpx reference/update flags.
    private struct PatternStep {
        let layer: Int
        let flags: Int
    }

    // Allocated by this; freed in deinit.
    private let context: UnsafeMutablePointer<vpx_codec_ctx_t>
    private let config: UnsafeMutablePointer<vpx_codec_enc_cfg_t>
    private let image: UnsafeMutablePointer<vpx_image_t>

    /// Picture width every input must have.
    public let width: Int
    /// Picture height every input must have.
    public let height: Int
    /// Number of temporal layers, 1…3.
    public let temporalLayers: Int
    /// Current target bitrate of the whole stream, in bits per second.
    public private(set) var bitrate: Int
    /// Current longest run of frames without a keyframe.
    public private(set) var maxKeyframeInterval: Int
    private let frameDuration: UInt

    private let pattern: [PatternStep]
    private var patternIndex = 0
    private var framesSinceKeyframe = 0
    private var keyframeRequested = true
    private var nextPTS: Int64 = 0
    /// The temporal layer of the frame that last wrote LAST, GOLDEN and ALTREF, to derive ``EncodedFrame/layerSync``.
    private var bufferLayers: (last: Int, golden: Int, altref: Int) = (0, 0, 0)

    /// Creates and configures a real-time VP8 encoder.
    /// - Throws: ``CodecError/Code/badArgument`` for an odd or out-of-range size, bitrate or layer count.
    public init(_ configuration: Configuration) throws(CodecError) {
        let c = configuration
        guard c.width >= 16, c.height >= 16, c.width <= 16383, c.height <= 16383, c.width % 2 == 0,
            c.height % 2 == 0
        else { throw CodecError(.badArgument, "VP8 size \(c.width)x\(c.height): even, 16…16383") }
        guard (1...240).contains(c.framesPerSecond) else { throw CodecError(.badArgument, "fps \(c.framesPerSecond)") }
        guard (1...3).contains(c.temporalLayers) else {
            throw CodecError(.badArgument, "temporal layers \(c.temporalLayers), expected 1…3")
        }
        guard (-16...16).contains(c.cpuUsed), (1...16).contains(c.threads), (0...100).contains(c.frameDropThreshold),
            (0...63).contains(c.minQuantizer), (c.minQuantizer...63).contains(c.maxQuantizer),
            c.maxKeyframeInterval >= 1
        else { throw CodecError(.badArgument, "cpuUsed, threads, drop threshold, quantizers or keyframe interval") }
        try Self.checkBitrate(c.bitrate)

        self.width = c.width
        self.height = c.height
        self.temporalLayers = c.temporalLayers
        self.bitrate = c.bitrate
        self.maxKeyframeInterval = c.maxKeyframeInterval
        self.frameDuration = UInt(90_000 / c.framesPerSecond)
        self.pattern = Self.pattern(layers: c.temporalLayers)

        self.context = .allocate(capacity: 1)
        self.context.initialize(to: vpx_codec_ctx_t())
        self.config = .allocate(capacity: 1)
        self.config.initialize(to: vpx_codec_enc_cfg_t())
        self.image = .allocate(capacity: 1)
        self.image.initialize(to: vpx_image_t())

        let interface = vpx_codec_vp8_cx()
        var status = vpx_codec_enc_config_default(interface, self.config, 0)
        guard status == VPX_CODEC_OK else {
            self.freeMemory()
            throw CodecError.vpx(status, "vpx_codec_enc_config_default")
        }
        let cfg = self.config
        cfg.pointee.g_w = UInt32(c.width)
        cfg.pointee.g_h = UInt32(c.height)
        cfg.pointee.g_timebase = vpx_rational(num: 1, den: 90_000)  // the RTP video clock (RFC 7741 §4.1)
        cfg.pointee.g_threads = UInt32(c.threads)
        cfg.pointee.g_pass = VPX_RC_ONE_PASS
        cfg.pointee.g_lag_in_frames = 0  // no look-ahead: every input frame comes out at once
        cfg.pointee.g_error_resilient = vpx_codec_er_flags_t(VPX_ERROR_RESILIENT_DEFAULT)
        cfg.pointee.rc_end_usage = VPX_CBR
        cfg.pointee.rc_dropframe_thresh = UInt32(c.frameDropThreshold)
        cfg.pointee.rc_resize_allowed = 0
        cfg.pointee.rc_min_quantizer = UInt32(c.minQuantizer)
        cfg.pointee.rc_max_quantizer = UInt32(c.maxQuantizer)
        cfg.pointee.rc_undershoot_pct = 100
        cfg.pointee.rc_overshoot_pct = 15
        cfg.pointee.rc_buf_initial_sz = 500
        cfg.pointee.rc_buf_optimal_sz = 600
        cfg.pointee.rc_buf_sz = 1000
        cfg.pointee.kf_mode = VPX_KF_DISABLED  // keyframes are scheduled by this wrapper
        self.applyBitrate(c.bitrate)
        if c.temporalLayers > 1 {
            Self.configureLayers(cfg, layers: c.temporalLayers)
        }

        status = vpx_codec_err_t(
            rawValue: UInt32(
                bitPattern: braid_vpx_codec_enc_init(
                    UnsafeMutableRawPointer(self.context),
                    UnsafeMutableRawPointer(interface),
                    UnsafeRawPointer(cfg),
                    0
                )
            )
        )
        guard status == VPX_CODEC_OK else {
            let error = CodecError.vpx(status, "vpx_codec_enc_init", context: self.context)
            self.freeMemory()
            throw error
        }
        do throws(CodecError) {
            try self.control(VP8E_SET_CPUUSED, Int32(c.cpuUsed))
            try self.control(VP8E_SET_NOISE_SENSITIVITY, 0)
            try self.control(VP8E_SET_STATIC_THRESHOLD, 1)
            try self.control(VP8E_SET_TOKEN_PARTITIONS, Int32(bitPattern: VP8_ONE_TOKENPARTITION.rawValue))
        } catch {
            vpx_codec_destroy(self.context)
            self.freeMemory()
            throw error
        }
    }

    deinit {
        vpx_codec_destroy(self.context)
        self.freeMemory()
    }

    private func freeMemory() {
        self.context.deallocate()
        self.config.deallocate()
        self.image.deallocate()
    }

    /// Makes the next encoded frame a keyframe (for a PLI or FIR from a receiver).
    public func requestKeyframe() {
        self.keyframeRequested = true
    }

    /// Changes the target bitrate of the whole stream; takes effect from the next frame.
    public func setBitrate(_ bitsPerSecond: Int) throws(CodecError) {
        try Self.checkBitrate(bitsPerSecond)
        self.applyBitrate(bitsPerSecond)
        let status = vpx_codec_enc_config_set(self.context, self.config)
        guard status == VPX_CODEC_OK else {
            throw CodecError.vpx(status, "vpx_codec_enc_config_set", context: self.context)
        }
        self.bitrate = bitsPerSecond
    }

    /// Changes the longest run of frames without a keyframe.
    public func setMaxKeyframeInterval(_ frames: Int) throws(CodecError) {
        guard frames >= 1 else { throw CodecError(.badArgument, "keyframe interval \(frames)") }
        self.maxKeyframeInterval = frames
    }

    /// Encodes one picture and passes each resulting frame to `onFrame`.
    ///
    /// - Parameters:
    ///   - picture: I420 planes of exactly ``width`` × ``height``; read, never copied or kept.
    ///   - pts: presentation time in the 90 kHz clock; by default the previous one plus one frame.
    ///   - forceKeyframe: encode this picture as a keyframe.
    ///   - onFrame: called once per encoded frame (never when rate control drops the picture); its
    ///     ``EncodedFrame/data`` is valid only during the call.
    /// - Returns: the number of frames delivered (0 or 1).
    @discardableResult
    public func encode(
        _ picture: I420Image,
        pts: Int64? = nil,
        forceKeyframe: Bool = false,
        _ onFrame: (EncodedFrame) -> Void
    ) throws(CodecError) -> Int {
        guard picture.width == self.width, picture.height == self.height else {
            throw CodecError(
                .badArgument,
                "picture \(picture.width)x\(picture.height), encoder \(self.width)x\(self.height)"
            )
        }
        guard let yPlane = picture.y.baseAddress, let uPlane = picture.u.baseAddress,
            let vPlane = picture.v.baseAddress,
            let yStride = Int32(exactly: picture.yStride), let uStride = Int32(exactly: picture.uStride),
            let vStride = Int32(exactly: picture.vStride)
        else { throw CodecError(.badArgument, "picture planes") }

        // Point the descriptor at the caller's planes: vpx_img_wrap fills format and sizes, then the
        // planes and strides are replaced, since the caller's planes need not be contiguous.
        guard
            vpx_img_wrap(
                self.image,
                VPX_IMG_FMT_I420,
                UInt32(self.width),
                UInt32(self.height),
                1,
                UnsafeMutablePointer(mutating: yPlane)
            ) != nil
        else { throw CodecError(.internalError, "vpx_img_wrap") }
        // libvpx takes `unsigned char *` planes but only reads input pictures.
        self.image.pointee.planes.0 = UnsafeMutablePointer(mutating: yPlane)
        self.image.pointee.planes.1 = UnsafeMutablePointer(mutating: uPlane)
        self.image.pointee.planes.2 = UnsafeMutablePointer(mutating: vPlane)
        self.image.pointee.stride.0 = yStride
        self.image.pointee.stride.1 = uStride
        self.image.pointee.stride.2 = vStride

        let isKeyframe = forceKeyframe || self.keyframeRequested || self.framesSinceKeyframe >= self.maxKeyframeInterval
        if isKeyframe {
            self.patternIndex = 0
        }
        let step = self.pattern[self.patternIndex]
        let flags = isKeyframe ? Int(VPX_EFLAG_FORCE_KF) : step.flags
        if self.temporalLayers > 1 {
            try self.control(VP8E_SET_TEMPORAL_LAYER_ID, Int32(step.layer))
        }
        let timestamp = pts ?? self.nextPTS
        let status = vpx_codec_encode(
            self.context,
            self.image,
            timestamp,
            self.frameDuration,
            flags,
            UInt(VPX_DL_REALTIME)
        )
        guard status == VPX_CODEC_OK else { throw CodecError.vpx(status, "vpx_codec_encode", context: self.context) }
        self.nextPTS = timestamp &+ Int64(self.frameDuration)
        self.patternIndex = (self.patternIndex + 1) % self.pattern.count

        var delivered = 0
        var iterator: vpx_codec_iter_t? = nil
        while let packet = vpx_codec_get_cx_data(self.context, &iterator) {
            guard packet.pointee.kind == VPX_CODEC_CX_FRAME_PKT else { continue }
            let frame = packet.pointee.data.frame
            guard let buffer = frame.buf else { continue }
            let keyframe = frame.flags & UInt32(VPX_FRAME_IS_KEY) != 0
            let (sync, discardable) = self.trackReferences(
                flags: keyframe ? 0 : flags,
                layer: step.layer,
                keyframe: keyframe
            )
            if keyframe {
                self.framesSinceKeyframe = 0
                self.keyframeRequested = false
            }
            onFrame(
                EncodedFrame(
                    data: UnsafeRawBufferPointer(start: buffer, count: frame.sz),
                    isKeyframe: keyframe,
                    temporalLayerID: keyframe ? 0 : step.layer,
                    layerSync: sync,
                    isDiscardable: discardable,
                    pts: frame.pts
                )
            )
            delivered += 1
        }
        self.framesSinceKeyframe += 1
        return delivered
    }

    /// Updates which layer last wrote each reference buffer and says whether the frame is a layer
    /// sync point (it reads only buffers written by TL0) and whether it writes no buffer at all.
    private func trackReferences(flags: Int, layer: Int, keyframe: Bool) -> (sync: Bool, discardable: Bool) {
        if keyframe {
            self.bufferLayers = (0, 0, 0)
            return (true, false)
        }
        if self.temporalLayers == 1 {
            // One layer: libvpx picks references itself, and every frame is TL0.
            return (true, false)
        }
        var sync = true
        if flags & Int(VP8_EFLAG_NO_REF_LAST) == 0, self.bufferLayers.last != 0 { sync = false }
        if flags & Int(VP8_EFLAG_NO_REF_GF) == 0, self.bufferLayers.golden != 0 { sync = false }
        if flags & Int(VP8_EFLAG_NO_REF_ARF) == 0, self.bufferLayers.altref != 0 { sync = false }
        let updatesLast = flags & Int(VP8_EFLAG_NO_UPD_LAST) == 0
        let updatesGolden = flags & Int(VP8_EFLAG_NO_UPD_GF) == 0
        let updatesAltref = flags & Int(VP8_EFLAG_NO_UPD_ARF) == 0
        if updatesLast { self.bufferLayers.last = layer }
        if updatesGolden { self.bufferLayers.golden = layer }
        if updatesAltref { self.bufferLayers.altref = layer }
        return (sync, !(updatesLast || updatesGolden || updatesAltref))
    }

    private func control(_ id: vp8e_enc_control_id, _ value: Int32) throws(CodecError) {
        let status = braid_vpx_codec_control_int(
            UnsafeMutableRawPointer(self.context),
            Int32(bitPattern: id.rawValue),
            value
        )
        guard status == 0 else {
            throw CodecError.vpx(
                vpx_codec_err_t(rawValue: UInt32(bitPattern: status)),
                "control \(id.rawValue)",
                context: self.context
            )
        }
    }

    private static func checkBitrate(_ bitsPerSecond: Int) throws(CodecError) {
        guard (10_000...100_000_000).contains(bitsPerSecond) else {
            throw CodecError(.badArgument, "bitrate \(bitsPerSecond) outside 10 kbit/s…100 Mbit/s")
        }
    }

    /// Writes the stream bitrate and, with temporal layers, the cumulative per-layer targets
    /// (`ts_target_bitrate[i]` covers layers 0…i). Split as libwebrtc does: 60/40 for two layers,
    /// 40/20/40 for three.
    private func applyBitrate(_ bitsPerSecond: Int) {
        let kbps = UInt32(bitsPerSecond / 1000)
        self.config.pointee.rc_target_bitrate = kbps
        withUnsafeMutableBytes(of: &self.config.pointee.ts_target_bitrate) { raw in
            let targets = raw.bindMemory(to: UInt32.self)
            switch self.temporalLayers {
            case 2:
                targets[0] = kbps * 60 / 100
                targets[1] = kbps
            case 3:
                targets[0] = kbps * 40 / 100
                targets[1] = kbps * 60 / 100
                targets[2] = kbps
            default:
                targets[0] = kbps
            }
        }
    }

    private static func configureLayers(_ cfg: UnsafeMutablePointer<vpx_codec_enc_cfg_t>, layers: Int) {
        cfg.pointee.ts_number_layers = UInt32(layers)
        cfg.pointee.ts_periodicity = layers == 2 ? 2 : 4
        withUnsafeMutableBytes(of: &cfg.pointee.ts_layer_id) { raw in
            let ids = raw.bindMemory(to: UInt32.self)
            if layers == 2 {
                ids[0] = 0
                ids[1] = 1
            } else {
                ids[0] = 0
                ids[1] = 2
                ids[2] = 1
                ids[3] = 2
            }
        }
        withUnsafeMutableBytes(of: &cfg.pointee.ts_rate_decimator) { raw in
            let decimators = raw.bindMemory(to: UInt32.self)
            if layers == 2 {
                decimators[0] = 2
                decimators[1] = 1
            } else {
                decimators[0] = 4
                decimators[1] = 2
                decimators[2] = 1
            }
        }
    }

    /// Reference structures after libvpx's `examples/vpx_temporal_svc_encoder.c` (its 3-layer mode
    /// with sync points every 8 frames), with a period of 8 frames so that each period opens with
    /// layer-sync frames: a receiver can move up a layer at least every 8 frames.
    ///
    /// Buffers: LAST is written only by TL0, GOLDEN only by TL1 (or TL1 of two layers), ALTREF only
    /// by TL2, so dropping the upper layers never removes a reference the lower ones use. Upper
    /// layers also leave the entropy context alone (`NO_UPD_ENTROPY`) for the same reason.
    private static func pattern(layers: Int) -> [PatternStep] {
        let noRefGolden = Int(VP8_EFLAG_NO_REF_GF)
        let noRefAltref = Int(VP8_EFLAG_NO_REF_ARF)
        let noUpdLast = Int(VP8_EFLAG_NO_UPD_LAST)
        let noUpdGolden = Int(VP8_EFLAG_NO_UPD_GF)
        let noUpdAltref = Int(VP8_EFLAG_NO_UPD_ARF)
        let noUpdEntropy = Int(VP8_EFLAG_NO_UPD_ENTROPY)
        switch layers {
        case 2:
            // TL0: read LAST, write LAST.
            let base = PatternStep(layer: 0, flags: noRefGolden | noRefAltref | noUpdGolden | noUpdAltref)
            // TL1 sync: read LAST only, write GOLDEN.
            let sync = PatternStep(layer: 1, flags: noRefGolden | noRefAltref | noUpdLast | noUpdAltref | noUpdEntropy)
            // TL1: read LAST and GOLDEN, write GOLDEN.
            let upper = PatternStep(layer: 1, flags: noRefAltref | noUpdLast | noUpdAltref | noUpdEntropy)
            return [base, sync, base, upper, base, upper, base, upper]
        case 3:
            let base = PatternStep(layer: 0, flags: noRefGolden | noRefAltref | noUpdGolden | noUpdAltref)
            // TL2 sync: read LAST, write ALTREF.
            let topSync = PatternStep(
                layer: 2,
                flags: noRefGolden | noRefAltref | noUpdLast | noUpdGolden | noUpdEntropy
            )
            // TL1 sync: read LAST, write GOLDEN.
            let middleSync = PatternStep(
                layer: 1,
                flags: noRefGolden | noRefAltref | noUpdLast | noUpdAltref | noUpdEntropy
            )
            // TL2: read all, write ALTREF.
            let top = PatternStep(layer: 2, flags: noUpdLast | noUpdGolden | noUpdEntropy)
            // TL1: read LAST and GOLDEN, write GOLDEN.
            let middle = PatternStep(layer: 1, flags: noRefAltref | noUpdLast | noUpdAltref | noUpdEntropy)
            // TL2 at the end of the period: read all, write nothing (discardable).
            let topLast = PatternStep(layer: 2, flags: noUpdLast | noUpdGolden | noUpdAltref | noUpdEntropy)
            return [base, topSync, middleSync, top, base, top, middle, topLast]
        default:
            return [PatternStep(layer: 0, flags: 0)]
        }
    }
}
