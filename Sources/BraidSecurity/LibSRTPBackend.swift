internal import CSRTP

// The libsrtp2 reference implementation. See SRTPTransform.swift for the one sessions use by default.

/// libsrtp2 must be initialised once per process before any session exists, and `srtp_init` itself is not
/// safe to call concurrently.
///
/// A global `let` is initialised exactly once, under the runtime's `swift_once`, whichever thread gets
/// there first, so it is both the "once" and the lock. The library is never shut down: sessions come and
/// go with calls, and re-initialising per call (a reference count that reaches zero) would only add churn.
private enum SRTPLibrary {
    static let initStatus: UInt32 = srtp_init().rawValue

    static func ensureInitialized() throws(SRTPError) {
        let status = Self.initStatus
        guard status == srtp_err_status_ok.rawValue else {
            throw SRTPError(.library, "srtp_init failed", libraryStatus: Int32(bitPattern: status))
        }
    }
}

/// Maps a libsrtp status to our error. Cold: only reached on failure.
@inline(never)
private func srtpError(_ status: srtp_err_status_t, file: StaticString = #fileID, line: UInt = #line) -> SRTPError {
    let raw = Int32(bitPattern: status.rawValue)
    switch status {
    case srtp_err_status_auth_fail:
        return SRTPError(.authenticationFailed, "authentication tag mismatch", libraryStatus: raw,
                         file: file, line: line)
    case srtp_err_status_replay_fail:
        return SRTPError(.replayed, "packet index already received", libraryStatus: raw, file: file, line: line)
    case srtp_err_status_replay_old:
        return SRTPError(.replayTooOld, "packet index older than the replay window", libraryStatus: raw,
                         file: file, line: line)
    case srtp_err_status_bad_param:
        return SRTPError(.badParameter, "libsrtp rejected a parameter or the packet", libraryStatus: raw,
                         file: file, line: line)
    default:
        return SRTPError(.library, "libsrtp failure", libraryStatus: raw, file: file, line: line)
    }
}

/// Which libsrtp entry point an operation uses.
enum SRTPOperation {
    case protectRTP, protectRTCP, unprotectRTP, unprotectRTCP

    /// Smallest packet libsrtp accepts: the fixed RTP header (RFC 3550 §5.1) or the RTCP header + sender
    /// SSRC (RFC 3550 §6.4.1). Checked here so that an empty buffer never reaches C.
    var minimumInput: Int {
        switch self {
        case .protectRTP, .unprotectRTP: 12
        case .protectRTCP, .unprotectRTCP: 8
        }
    }
}

/// The libsrtp2 implementation of one direction, kept as the reference the OpenSSL implementation
/// (``SRTPTransform``) is checked against, packet by packet, in the tests and benchmarks; sessions pick it
/// with ``SRTPImplementation/libsrtp``. The one owner of a libsrtp `srtp_t`; freed in `deinit`.
///
/// Debian builds libsrtp2 on NSS, which creates a cipher context per packet: 5 (GCM) to 14 (AES-CM)
/// heap allocations per protect, and each `srtp_t` plus its per-SSRC streams costs tens of kilobytes.
///
/// libsrtp allows one wildcard SSRC policy per session, and a wildcard matches either inbound or outbound
/// traffic, never both, so each direction gets its own `srtp_t`.
final class LibSRTPBackend {
    let session: OpaquePointer
    let profile: SRTPProfile

    init(
        profile: SRTPProfile,
        masterKey: SRTPMasterKey,
        inbound: Bool,
        replayWindowSize: Int,
        allowRepeatTransmission: Bool
    ) throws(SRTPError) {
        try SRTPLibrary.ensureInitialized()
        guard masterKey.key.count == profile.masterKeyLength, masterKey.salt.count == profile.masterSaltLength
        else {
            throw SRTPError(.badKeyLength, "master key or salt length does not match the profile")
        }
        // libsrtp accepts 64 ..< 0x8000 (srtp_stream_init); 0 would mean its default of 128.
        guard replayWindowSize >= 64, replayWindowSize < 0x8000 else {
            throw SRTPError(.badParameter, "replay window size must be in 64..<32768")
        }

        var policy = srtp_policy_t()
        switch profile {
        case .aesCM128HMACSHA1_80:
            // srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80 is a macro over the rtp default.
            srtp_crypto_policy_set_rtp_default(&policy.rtp)
            srtp_crypto_policy_set_rtcp_default(&policy.rtcp)
        case .aeadAES128GCM:
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtp)
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtcp)
        }
        policy.ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound
        policy.ssrc.value = 0
        policy.window_size = UInt(replayWindowSize)
        policy.allow_repeat_tx = allowRepeatTransmission ? 1 : 0
        policy.next = nil

        // libsrtp wants key || salt in one buffer; it derives session keys in srtp_create and keeps no
        // pointer to this one, which is wiped right after.
        var keyAndSalt = masterKey.key + masterKey.salt
        var created: OpaquePointer? = nil
        let status = keyAndSalt.withUnsafeMutableBufferPointer { buffer in
            policy.key = buffer.baseAddress
            return srtp_create(&created, &policy)
        }
        for index in keyAndSalt.indices { keyAndSalt[index] = 0 }
        guard status == srtp_err_status_ok, let created else {
            throw srtpError(status)
        }
        self.session = created
        self.profile = profile
    }

    deinit {
        srtp_dealloc(self.session)
    }

    /// Copies `packet` into `destination`, then runs libsrtp there, in place.
    @inline(__always)
    func transform(
        _ operation: SRTPOperation,
        _ packet: UnsafeRawBufferPointer,
        into destination: UnsafeMutableRawBufferPointer
    ) throws(SRTPError) -> Int {
        let growth: Int
        switch operation {
        case .protectRTP: growth = self.profile.rtpTrailerLength
        case .protectRTCP: growth = self.profile.rtcpTrailerLength
        case .unprotectRTP, .unprotectRTCP: growth = 0
        }
        guard packet.count >= operation.minimumInput, let source = packet.baseAddress else {
            throw SRTPError(.badParameter, "packet shorter than its fixed header")
        }
        // libsrtp takes the length as a C int; refuse anything whose result would not fit.
        guard packet.count <= Int(Int32.max) - growth, let inputLength = Int32(exactly: packet.count) else {
            throw SRTPError(.badParameter, "packet too large")
        }
        guard destination.count >= packet.count + growth, let target = destination.baseAddress else {
            throw SRTPError(.bufferTooSmall, "destination cannot hold the packet and its trailer")
        }
        if target != UnsafeMutableRawPointer(mutating: source) {
            // memmove semantics: correct even if the caller hands overlapping buffers.
            target.copyMemory(from: source, byteCount: packet.count)
        }
        return try self.run(operation, target, length: inputLength)
    }

    @inline(__always)
    func run(_ operation: SRTPOperation, _ target: UnsafeMutableRawPointer, length: Int32) throws(SRTPError) -> Int {
        var length = length
        let status: srtp_err_status_t
        switch operation {
        case .protectRTP: status = srtp_protect(self.session, target, &length)
        case .protectRTCP: status = srtp_protect_rtcp(self.session, target, &length)
        case .unprotectRTP: status = srtp_unprotect(self.session, target, &length)
        case .unprotectRTCP: status = srtp_unprotect_rtcp(self.session, target, &length)
        }
        guard status == srtp_err_status_ok else { throw srtpError(status) }
        return Int(length)
    }
}

