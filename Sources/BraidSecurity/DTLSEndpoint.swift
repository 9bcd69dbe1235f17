import Synchronization
internal import CBraidShims
internal import COpenSSL

/// One side of a DTLS 1.2 association used to key SRTP
/// ([RFC 5764](https://www.rfc-editor.org/rfc/rfc5764)), run by OpenSSL over memory BIOs: no sockets, no
/// threads, no timers of its own. The owner feeds it datagrams and sends what it returns.
///
/// ```
/// start()            client only: returns the ClientHello flight
/// receive(datagram)  returns the datagrams to send in answer (maybe none)
/// nextTimeout(now:)  when to call handleTimeout(); nil when no flight awaits an answer
/// handleTimeout()    retransmits the last flight when its timer has expired
/// close()            returns a close_notify
/// compact()          client, once connected: frees OpenSSL's state, keeping a close_notify for close()
/// ```
///
/// **Datagrams out.** OpenSSL writes each DTLS record to the write BIO with its own `BIO_write` and sizes
/// every record to fit the link MTU (`SSL_OP_NO_QUERY_MTU` + `DTLS_set_link_mtu`). A memory BIO would
/// concatenate a flight's records, so after each call the pending bytes are read back, split at the
/// record headers (RFC 6347 §4.1, 13 bytes, length in the last two) and packed, in order, into datagrams
/// of at most ``Configuration/mtu`` bytes. A record never straddles two datagrams, which RFC 6347 §4.1.1
/// requires, and several records sharing one datagram is allowed by the same section. (OpenSSL's socket
/// BIO would send each record alone; packing a flight saves datagrams.)
///
/// **Time.** OpenSSL runs the retransmission timer against the system clock (`DTLSv1_get_timeout`), with
/// the schedule set here through `DTLS_set_timer_cb`: ``Configuration/initialRetransmitTimeout``, doubling
/// up to ``Configuration/maximumRetransmitTimeout``; OpenSSL gives up after 12 retransmissions. The caller's
/// clock only turns OpenSSL's "time left" into a deadline on that clock (``nextTimeout(now:)``), so an
/// event loop can arm its own timer. Calling ``handleTimeout()`` early is harmless (nothing happens).
///
/// **Authentication.** Both sides must present a certificate (`SSL_VERIFY_PEER |
/// SSL_VERIFY_FAIL_IF_NO_PEER_CERT`). Chain validation is skipped, as WebRTC certificates are
/// self-signed; instead the peer's leaf certificate is hashed and compared with the fingerprint from its
/// SDP inside the verify callback, so a mismatch aborts the handshake with a `bad_certificate` alert
/// before any key is derived.
///
/// Not thread-safe: use an endpoint from one event loop.
public final class DTLSEndpoint {
    /// Where the handshake stands.
    public enum State: Hashable, Sendable {
        /// Handshake in progress (or not yet started, for a client).
        case handshaking
        /// Handshake complete, peer authenticated, SRTP profile agreed: keys can be exported.
        case connected
        /// The handshake or connection failed; the endpoint accepts no more input.
        case failed(DTLSError)
        /// A close_notify was sent or received.
        case closed
    }

    /// Tunables, with WebRTC-friendly defaults.
    public struct Configuration: Sendable {
        /// SRTP profiles offered (client) or accepted (server), most preferred first. An OpenSSL server
        /// picks the first entry of its own list that the client offers.
        public var srtpProfiles: [SRTPProfile]
        /// Largest datagram to emit, DTLS record headers included (IP/UDP headers excluded). 1200 leaves
        /// room for IPv6, TURN and VPN overheads.
        public var mtu: Int
        /// First retransmission timeout; doubled after every retransmission.
        public var initialRetransmitTimeout: Duration
        /// Cap on the doubled retransmission timeout.
        public var maximumRetransmitTimeout: Duration

        public init(
            srtpProfiles: [SRTPProfile] = [.aeadAES128GCM, .aesCM128HMACSHA1_80],
            mtu: Int = 1200,
            initialRetransmitTimeout: Duration = .milliseconds(100),
            maximumRetransmitTimeout: Duration = .seconds(4)
        ) {
            self.srtpProfiles = srtpProfiles
            self.mtu = mtu
            self.initialRetransmitTimeout = initialRetransmitTimeout
            self.maximumRetransmitTimeout = maximumRetransmitTimeout
        }
    }

    /// Client (sends the ClientHello) or server.
    public let role: DTLSRole
    /// The fingerprint the peer announced in SDP; its certificate must hash to it.
    public let remoteFingerprint: DTLSFingerprint
    /// The configuration in force.
    public let configuration: Configuration

    /// The current state.
    public private(set) var state: State = .handshaking
    /// The SRTP profile agreed in the handshake; set once ``State/connected``.
    public private(set) var negotiatedProfile: SRTPProfile?
    /// Bytes of application data received and discarded (no data channels yet).
    public private(set) var discardedApplicationBytes: Int = 0
    /// Records received after the handshake that OpenSSL could not process (forged, corrupted or out of
    /// place), and once ``isCompact`` every record but an alert; they are dropped without ending the
    /// association.
    public private(set) var rejectedRecords: Int = 0
    /// Whether ``compact()`` has freed the OpenSSL state.
    public private(set) var isCompact = false

    /// `SSL_CTX *`, one reference owned; nil once compact.
    private var context: OpaquePointer?
    /// `SSL *`, owned; owns both BIOs. Nil once compact: every path that uses it (or the BIOs) is reached
    /// only from a state in which it is set.
    private var ssl: OpaquePointer?
    /// `BIO *` OpenSSL reads from (we write received datagrams here); owned by `ssl`.
    private var readBIO: OpaquePointer?
    /// `BIO *` OpenSSL writes to (we read datagrams to send); owned by `ssl`.
    private var writeBIO: OpaquePointer?
    /// What a compact endpoint still knows: the close_notify prepared before the state was freed, the
    /// exported keying material and the peer's fingerprint.
    private var preparedCloseNotify: [[UInt8]] = []
    private var compactKeyingMaterial: [UInt8]?
    private var compactPeerFingerprint: DTLSFingerprint?
    /// Set by the verify callback once the peer's leaf certificate matched ``remoteFingerprint``.
    fileprivate var peerFingerprintVerified = false
    /// Set by the verify callback when the peer's certificate did not match.
    fileprivate var peerFingerprintMismatch: DTLSFingerprint?
    /// Retransmission schedule in microseconds, read by the timer callback.
    fileprivate let initialTimeoutMicroseconds: UInt32
    fileprivate let maximumTimeoutMicroseconds: UInt32
    private var started = false

    /// Creates an endpoint.
    /// - Parameters:
    ///   - role: ``DTLSRole/client`` for SDP `a=setup:active`, ``DTLSRole/server`` for `passive`.
    ///   - certificate: this side's identity (its fingerprint goes in our SDP).
    ///   - remoteFingerprint: the peer's `a=fingerprint`.
    ///   - configuration: profiles, MTU and timers.
    /// - Throws: ``DTLSError`` with ``DTLSError/Code/badParameter`` for an empty profile list, an MTU
    ///   outside 256...16384 or a bad timeout, or ``DTLSError/Code/library`` if OpenSSL refuses the setup.
    public init(
        role: DTLSRole,
        certificate: DTLSCertificate,
        remoteFingerprint: DTLSFingerprint,
        configuration: Configuration = Configuration()
    ) throws(DTLSError) {
        guard !configuration.srtpProfiles.isEmpty else {
            throw DTLSError(.badParameter, "at least one SRTP profile is required")
        }
        guard configuration.mtu >= 256, configuration.mtu <= 16_384 else {
            throw DTLSError(.badParameter, "MTU must be 256...16384")
        }
        guard let initial = Self.microseconds(configuration.initialRetransmitTimeout),
            let maximum = Self.microseconds(configuration.maximumRetransmitTimeout),
            initial >= 20_000, maximum >= initial
        else {
            // Below ~15 ms OpenSSL treats a running timer as already expired.
            throw DTLSError(.badParameter, "retransmit timeouts must be >= 20 ms, initial <= maximum, < 1 h")
        }
        self.role = role
        self.remoteFingerprint = remoteFingerprint
        self.configuration = configuration
        self.initialTimeoutMicroseconds = initial
        self.maximumTimeoutMicroseconds = maximum

        ERR_clear_error()
        let context = try Self.sharedContext(certificate: certificate, configuration: configuration)
        var ssl: OpaquePointer?
        do throws(DTLSError) {
            ssl = SSL_new(context)
            guard let ssl else { throw DTLSError(.library, "SSL_new failed: \(openSSLErrors())") }
            guard let readBIO = BIO_new(BIO_s_mem()) else { throw DTLSError(.library, "BIO_new failed") }
            guard let writeBIO = BIO_new(BIO_s_mem()) else {
                BIO_free(readBIO)
                throw DTLSError(.library, "BIO_new failed")
            }
            SSL_set_bio(ssl, readBIO, writeBIO)  // ssl now owns both
            // An empty read BIO must mean "retry later" (-1), not end of stream (0).
            _ = braid_bio_set_mem_eof_return(UnsafeMutableRawPointer(readBIO), -1)
            _ = braid_bio_set_mem_eof_return(UnsafeMutableRawPointer(writeBIO), -1)
            // DTLS_set_link_mtu is a macro over SSL_ctrl.
            guard SSL_ctrl(ssl, DTLS_CTRL_SET_LINK_MTU, configuration.mtu, nil) == 1 else {
                throw DTLSError(.library, "DTLS_set_link_mtu failed")
            }
            switch role {
            case .client: SSL_set_connect_state(ssl)
            case .server: SSL_set_accept_state(ssl)
            }
            self.readBIO = readBIO
            self.writeBIO = writeBIO
        } catch {
            if let ssl { SSL_free(ssl) }
            SSL_CTX_free(context)
            throw error
        }
        self.context = context
        self.ssl = ssl
        // The callbacks find this endpoint through the SSL's ex data; unretained, since `self` owns `ssl`.
        SSL_set_ex_data(ssl, endpointExDataIndex, Unmanaged.passUnretained(self).toOpaque())
        DTLS_set_timer_cb(ssl, dtlsTimerCallback)
    }

    private static func microseconds(_ duration: Duration) -> UInt32? {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, seconds < 3600 else { return nil }
        return UInt32(seconds) * 1_000_000 + UInt32(attoseconds / 1_000_000_000_000)
    }

    /// The certificate's context for this SRTP profile list, made on first use; returned with a reference
    /// of its own for the caller (released in `deinit`).
    private static func sharedContext(
        certificate: DTLSCertificate, configuration: Configuration
    ) throws(DTLSError) -> OpaquePointer {
        let key = configuration.srtpProfiles.map(\.dtlsProfileName).joined(separator: ":")
        let result: Result<OpaquePointer, DTLSError> = certificate.sharedContexts.withLock { contexts in
            if let context = contexts[key] {
                SSL_CTX_up_ref(context)
                return .success(context)
            }
            guard let context = SSL_CTX_new(DTLS_method()) else {
                return .failure(DTLSError(.library, "SSL_CTX_new failed: \(openSSLErrors())"))
            }
            do throws(DTLSError) {
                try Self.configure(context: context, certificate: certificate, configuration: configuration)
            } catch {
                SSL_CTX_free(context)
                return .failure(error)
            }
            contexts[key] = context
            SSL_CTX_up_ref(context)
            return .success(context)
        }
        return try result.get()
    }

    private static func configure(
        context: OpaquePointer,
        certificate: DTLSCertificate,
        configuration: Configuration
    ) throws(DTLSError) {
        // DTLS_method() negotiates; the floor keeps DTLS 1.0 out.
        guard braid_ssl_ctx_set_min_proto_version(UnsafeMutableRawPointer(context), DTLS1_2_VERSION) == 1 else {
            throw DTLSError(.library, "cannot require DTLS 1.2")
        }
        // Memory BIOs cannot answer MTU queries; without this OpenSSL falls back to tiny fragments.
        // No session tickets: WebRTC never resumes, and the ticket only lengthens the final flight.
        SSL_CTX_set_options(context, braid_ssl_op_no_query_mtu() | braid_ssl_op_no_ticket())
        // After the handshake a WebRTC association sees only the odd alert: give the record buffers back
        // while idle (tens of KB per session on a node with thousands of sessions).
        SSL_CTX_ctrl(context, SSL_CTRL_MODE, Int(SSL_MODE_RELEASE_BUFFERS), nil)
        guard braid_ssl_ctx_set1_groups_list(UnsafeMutableRawPointer(context), "X25519:P-256") == 1 else {
            throw DTLSError(.library, "cannot set the ECDHE groups: \(openSSLErrors())")
        }
        guard SSL_CTX_use_certificate(context, certificate.certificate) == 1,
            SSL_CTX_use_PrivateKey(context, certificate.privateKey) == 1,
            SSL_CTX_check_private_key(context) == 1
        else {
            throw DTLSError(.badCertificate, "cannot use the certificate: \(openSSLErrors())")
        }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, dtlsVerifyCallback)
        let profiles = configuration.srtpProfiles.map(\.dtlsProfileName).joined(separator: ":")
        // Unusually, this one returns 0 on success.
        guard SSL_CTX_set_tlsext_use_srtp(context, profiles) == 0 else {
            throw DTLSError(.library, "use_srtp rejected '\(profiles)': \(openSSLErrors())")
        }
    }

    deinit {
        if let ssl = self.ssl { SSL_free(ssl) }
        if let context = self.context { SSL_CTX_free(context) }
    }

    // MARK: Driving the handshake

    /// Starts the handshake. A client returns its ClientHello flight; a server returns nothing and waits
    /// for one. Calling it again does nothing.
    public func start() -> [[UInt8]] {
        guard case .handshaking = self.state, !self.started else { return [] }
        self.started = true
        if self.role == .client { self.advanceHandshake() }
        return self.drainOutgoing()
    }

    /// Feeds one received datagram and returns the datagrams to send in answer.
    ///
    /// Check ``state`` afterwards: it becomes ``State/connected`` when the handshake completes, or
    /// ``State/failed(_:)`` when it fails (the returned datagrams then carry the alert, if any).
    /// - Throws: ``DTLSError/Code/malformedDatagram`` when the bytes are not whole DTLS records (nothing
    ///   is fed to OpenSSL and the state is unchanged: RFC 6347 §4.1.2.7 has invalid records silently
    ///   discarded, so garbage on the wire cannot kill a connection), or ``DTLSError/Code/notUsable``
    ///   after failure or close.
    public func receive(_ datagram: UnsafeRawBufferPointer) throws(DTLSError) -> [[UInt8]] {
        switch self.state {
        case .failed, .closed: throw DTLSError(.notUsable, "endpoint is \(self.state)")
        case .handshaking, .connected: break
        }
        guard Self.isWellFormed(datagram), let count = Int32(exactly: datagram.count) else {
            throw DTLSError(.malformedDatagram, "not a sequence of whole DTLS 1.0/1.2 records")
        }
        if self.isCompact {
            self.receiveWhileCompact(datagram)
            return []
        }
        self.started = true  // a server starts on its first datagram
        guard BIO_write(self.readBIO, datagram.baseAddress, count) == count else {
            throw DTLSError(.library, "BIO_write failed")
        }
        if case .handshaking = self.state { self.advanceHandshake() }
        if case .connected = self.state { self.readApplicationData() }
        return self.drainOutgoing()
    }

    /// Feeds one received datagram held in an array; see the `UnsafeRawBufferPointer` overload.
    public func receive(_ datagram: [UInt8]) throws(DTLSError) -> [[UInt8]] {
        // Array.withUnsafeBytes rethrows untyped errors, so carry the typed result out instead.
        let result = datagram.withUnsafeBytes { raw in Result { () throws(DTLSError) in try self.receive(raw) } }
        return try result.get()
    }

    /// Time left before the last flight should be retransmitted, or `nil` when no flight awaits an answer.
    public var timeoutRemaining: Duration? {
        guard case .handshaking = self.state else { return nil }
        var milliseconds: Int64 = 0
        guard braid_dtls_get_timeout_ms(UnsafeMutableRawPointer(self.ssl), &milliseconds) == 1 else { return nil }
        return .milliseconds(milliseconds)
    }

    /// The retransmission deadline on the caller's clock (`now` + ``timeoutRemaining``), or `nil`.
    public func nextTimeout<Instant: InstantProtocol>(now: Instant) -> Instant? where Instant.Duration == Duration {
        self.timeoutRemaining.map { now.advanced(by: $0) }
    }

    /// Retransmits the last flight if its timer has expired and returns it; returns nothing otherwise.
    ///
    /// After 12 unanswered retransmissions the endpoint fails with ``DTLSError/Code/timedOut``.
    public func handleTimeout() -> [[UInt8]] {
        guard case .handshaking = self.state, self.started else { return [] }
        ERR_clear_error()
        if braid_dtls_handle_timeout(UnsafeMutableRawPointer(self.ssl)) < 0 {
            self.fail(DTLSError(.timedOut, "no answer after repeated retransmissions: \(openSSLErrors())"))
        }
        return self.drainOutgoing()
    }

    /// Encrypts application data into DTLS records and returns the datagrams to send.
    ///
    /// Nothing in Braid sends application data over DTLS yet (SCTP data channels would); this exists so
    /// that the receiving side's handling of it can be exercised.
    /// DTLS preserves message boundaries, so one message must fit one datagram: at most
    /// ``maximumApplicationDataLength`` bytes.
    /// - Throws: ``DTLSError/Code/notConnected`` before the handshake completes,
    ///   ``DTLSError/Code/badParameter`` for a message that does not fit a datagram.
    public func sendApplicationData(_ data: [UInt8]) throws(DTLSError) -> [[UInt8]] {
        guard case .connected = self.state else { throw DTLSError(.notConnected, "not connected") }
        guard !self.isCompact else { throw DTLSError(.notUsable, "the endpoint is compact") }
        guard data.count <= self.maximumApplicationDataLength else {
            throw DTLSError(.badParameter, "\(data.count) bytes do not fit one datagram")
        }
        guard !data.isEmpty, let count = Int32(exactly: data.count) else { return [] }
        ERR_clear_error()
        guard SSL_write(self.ssl, data, count) == count else {
            throw DTLSError(.library, "SSL_write failed: \(openSSLErrors())")
        }
        return self.drainOutgoing()
    }

    /// The largest application message that fits one datagram with the negotiated cipher (0 before the
    /// handshake completes).
    public var maximumApplicationDataLength: Int {
        guard case .connected = self.state, !self.isCompact else { return 0 }
        return Int(DTLS_get_data_mtu(self.ssl))
    }

    /// Sends close_notify and closes the endpoint; returns the alert datagram(s) to send.
    public func close() -> [[UInt8]] {
        switch self.state {
        case .closed, .failed: return []
        case .handshaking, .connected: break
        }
        self.state = .closed
        if self.isCompact { return self.preparedCloseNotify }
        ERR_clear_error()
        if self.started { _ = SSL_shutdown(self.ssl) }
        return self.drainOutgoing()
    }

    /// Frees the association's OpenSSL state once a client's handshake is over, keeping what a WebRTC
    /// association still uses: the SRTP keying material, the peer's fingerprint, and a close_notify
    /// written now (OpenSSL numbers it with the next record sequence number, and nothing else is sent
    /// over DTLS afterwards) for ``close()`` to return later.
    ///
    /// OpenSSL keeps a DTLS connection's handshake buffer (about 21 KB, in case a flight is retransmitted)
    /// and about 17 KB more allocated when the first flight is written, for as long as the connection
    /// lives (heap profile of braid-load, Benchmarks/README.md). A client needs none of it once its
    /// handshake is complete: the server sent its last flight before the client could complete,
    /// and repeats it only when the client repeats its own, which a complete client no longer does.
    ///
    /// What changes: records received afterwards are not decrypted. An alert record closes the endpoint
    /// (``State/closed``) without authentication, so anyone able to send from the peer's address can end
    /// the association; every other record is counted in ``rejectedRecords``. Use it where that is
    /// acceptable, such as braid-load's light subscribers, which authenticate only a sample of media too.
    /// - Returns: whether the endpoint is compact: false unless it is a connected client.
    @discardableResult
    public func compact() -> Bool {
        if self.isCompact { return true }
        guard self.role == .client, case .connected = self.state, let ssl = self.ssl else { return false }
        guard let material = try? self.exportSRTPKeyingMaterial() else { return false }
        self.compactKeyingMaterial = material
        self.compactPeerFingerprint = self.peerCertificateFingerprint
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        self.preparedCloseNotify = self.drainOutgoing()
        SSL_free(ssl)
        if let context = self.context { SSL_CTX_free(context) }
        self.ssl = nil
        self.readBIO = nil
        self.writeBIO = nil
        self.context = nil
        self.isCompact = true
        return true
    }

    /// A compact endpoint's receive: an alert record (RFC 6347 §4.1, content type 21, any epoch) closes it;
    /// anything else is counted. `datagram` is well formed.
    private func receiveWhileCompact(_ datagram: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < datagram.count {
            let length = Int(datagram[offset + 11]) << 8 | Int(datagram[offset + 12])
            if datagram[offset] == Self.alertContentType {
                self.state = .closed
                return
            }
            self.rejectedRecords += 1
            offset += Self.recordHeaderLength + length
        }
    }

    // MARK: Keys

    /// The `EXTRACTOR-dtls_srtp` keying material: 2 × (key + salt) bytes for the negotiated profile, laid
    /// out client key | server key | client salt | server salt
    /// ([RFC 5764 §4.2](https://www.rfc-editor.org/rfc/rfc5764#section-4.2)).
    /// - Throws: ``DTLSError/Code/notConnected`` before the handshake completes.
    public func exportSRTPKeyingMaterial() throws(DTLSError) -> [UInt8] {
        guard case .connected = self.state, let profile = self.negotiatedProfile else {
            throw DTLSError(.notConnected, "keys exist only once connected")
        }
        if let material = self.compactKeyingMaterial { return material }
        let label = Array("EXTRACTOR-dtls_srtp".utf8)
        var material = [UInt8](repeating: 0, count: profile.keyingMaterialLength)
        ERR_clear_error()
        let result = SSL_export_keying_material(
            self.ssl, &material, material.count, label, label.count, nil, 0, 0
        )
        guard result == 1 else {
            throw DTLSError(.library, "SSL_export_keying_material failed: \(openSSLErrors())")
        }
        return material
    }

    /// The master keys for both directions, arranged for this endpoint's role.
    public func srtpKeys() throws(DTLSError) -> SRTPKeys {
        let material = try self.exportSRTPKeyingMaterial()
        do throws(SRTPError) {
            return try SRTPKeys(keyingMaterial: material, profile: self.negotiatedProfile!, role: self.role)
        } catch {
            throw DTLSError(.srtp, "\(error)")
        }
    }

    /// Creates the SRTP sessions for this association: ours protects with our half of the keys, the
    /// inbound one unprotects with the peer's.
    public func makeSRTPSession(replayWindowSize: Int = 128) throws(DTLSError) -> SRTPSession {
        let keys = try self.srtpKeys()
        do throws(SRTPError) {
            return try SRTPSession(keys: keys, replayWindowSize: replayWindowSize)
        } catch {
            throw DTLSError(.srtp, "\(error)")
        }
    }

    /// The SHA-256 fingerprint of the certificate the peer presented, once it has presented one.
    public var peerCertificateFingerprint: DTLSFingerprint? {
        if self.isCompact { return self.compactPeerFingerprint }
        guard let certificate = SSL_get1_peer_certificate(self.ssl) else { return nil }
        defer { X509_free(certificate) }
        return DTLSFingerprint.of(certificate: certificate, algorithm: .sha256)
    }

    // MARK: Internals

    private func advanceHandshake() {
        ERR_clear_error()
        let result = SSL_do_handshake(self.ssl)
        if result == 1 {
            self.handshakeCompleted()
            return
        }
        let error = SSL_get_error(self.ssl, result)
        if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return }
        if let presented = self.peerFingerprintMismatch {
            self.fail(DTLSError(
                .fingerprintMismatch,
                "peer certificate is \(presented.hexString), SDP announced \(self.remoteFingerprint.hexString)"
            ))
        } else {
            self.fail(DTLSError(.handshakeFailed, "SSL_do_handshake error \(error): \(openSSLErrors())"))
        }
    }

    private func handshakeCompleted() {
        // The verify callback already compared the fingerprint; check again on the certificate the session
        // actually holds, so that no path through OpenSSL can skip it.
        guard self.peerFingerprintVerified,
            let presented = self.peerCertificate(algorithm: self.remoteFingerprint.algorithm),
            presented == self.remoteFingerprint
        else {
            self.fail(DTLSError(.fingerprintMismatch, "peer certificate does not match the SDP fingerprint"))
            return
        }
        guard let selected = SSL_get_selected_srtp_profile(self.ssl),
            let id = UInt16(exactly: selected.pointee.id),
            let profile = SRTPProfile(dtlsProfileID: id),
            self.configuration.srtpProfiles.contains(profile)
        else {
            self.fail(DTLSError(.noSRTPProfile, "the peer agreed to none of \(self.configuration.srtpProfiles)"))
            return
        }
        self.negotiatedProfile = profile
        self.state = .connected
    }

    private func peerCertificate(algorithm: DTLSFingerprint.Algorithm) -> DTLSFingerprint? {
        guard let certificate = SSL_get1_peer_certificate(self.ssl) else { return nil }
        defer { X509_free(certificate) }
        return DTLSFingerprint.of(certificate: certificate, algorithm: algorithm)
    }

    /// Drains decrypted application data (none is expected until data channels exist) and notices
    /// close_notify. Reading is also what lets OpenSSL answer a peer that retransmits its last flight.
    private func readApplicationData() {
        var scratch = [UInt8](repeating: 0, count: 2048)
        while true {
            ERR_clear_error()
            let count = SSL_read(self.ssl, &scratch, Int32(scratch.count))
            if count > 0 {
                self.discardedApplicationBytes += Int(count)
                continue
            }
            let error = SSL_get_error(self.ssl, count)
            switch error {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                return
            case SSL_ERROR_ZERO_RETURN:
                // The peer sent close_notify: answer with ours and stop.
                _ = SSL_shutdown(self.ssl)
                self.state = .closed
                return
            default:
                // RFC 6347 §4.1.2.7: invalid records SHOULD be silently discarded, preserving the
                // association. Anyone who knows a peer's address can send a well-framed record with a random
                // body; failing here would let them end a call whose SRTP keys are already exported. So the
                // record is counted and the association kept.
                ERR_clear_error()
                self.rejectedRecords += 1
                return
            }
        }
    }

    private func fail(_ error: DTLSError) {
        if case .failed = self.state { return }
        self.state = .failed(error)
        self.negotiatedProfile = nil
    }

    /// Reads what OpenSSL wrote and packs whole records into datagrams of at most `mtu` bytes.
    private func drainOutgoing() -> [[UInt8]] {
        let pending = Int(BIO_ctrl_pending(self.writeBIO))
        guard pending > 0, let wanted = Int32(exactly: pending) else { return [] }
        var bytes = [UInt8](repeating: 0, count: pending)
        let read = Int(BIO_read(self.writeBIO, &bytes, wanted))
        guard read > 0 else { return [] }
        if read < pending { bytes.removeLast(pending - read) }

        var datagrams: [[UInt8]] = []
        var current: [UInt8] = []
        var offset = 0
        while offset < bytes.count {
            var end = bytes.count
            if bytes.count - offset >= Self.recordHeaderLength {
                let length = Int(bytes[offset + 11]) << 8 | Int(bytes[offset + 12])
                end = min(bytes.count, offset + Self.recordHeaderLength + length)
            }
            let record = bytes[offset..<end]
            if !current.isEmpty, current.count + record.count > self.configuration.mtu {
                datagrams.append(current)
                current = []
            }
            current.append(contentsOf: record)
            offset = end
        }
        if !current.isEmpty { datagrams.append(current) }
        return datagrams
    }

    /// DTLS record header length ([RFC 6347 §4.1](https://www.rfc-editor.org/rfc/rfc6347#section-4.1)).
    static let recordHeaderLength = 13
    /// ContentType alert (RFC 5246 §6.2.1).
    static let alertContentType: UInt8 = 21

    /// Checks that `datagram` is one or more whole DTLS 1.0/1.2 plaintext-format records
    /// ([RFC 6347 §4.1](https://www.rfc-editor.org/rfc/rfc6347#section-4.1)):
    ///
    /// ```
    ///  0                   1                   2                   3
    ///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |  ContentType  |    ProtocolVersion (254,255 | 254,253)  |  Epoch  ...
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    ///   ... Epoch     |               sequence_number (48 bits)          ...
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    ///   ...                           |            length             |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |                  fragment (length bytes) ...
    /// ```
    ///
    /// ContentType must be change_cipher_spec (20), alert (21), handshake (22) or application_data (23);
    /// length at most 2^14 + 2048 (the DTLSCiphertext bound).
    static func isWellFormed(_ datagram: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        guard !datagram.isEmpty else { return false }
        while offset < datagram.count {
            guard datagram.count - offset >= Self.recordHeaderLength else { return false }
            let type = datagram[offset]
            let major = datagram[offset + 1]
            let minor = datagram[offset + 2]
            let length = Int(datagram[offset + 11]) << 8 | Int(datagram[offset + 12])
            guard (20...23).contains(type), major == 0xFE, minor == 0xFF || minor == 0xFD,
                length <= 16_384 + 2_048,
                length <= datagram.count - offset - Self.recordHeaderLength
            else { return false }
            offset += Self.recordHeaderLength + length
        }
        return true
    }

    /// Called by the verify callback for each certificate in the peer's chain.
    fileprivate func verifyPeer(certificate: OpaquePointer?, depth: Int32) -> Bool {
        // Only the leaf (depth 0) identifies the peer; WebRTC chains are a single self-signed certificate.
        guard depth == 0 else { return true }
        guard let certificate,
            let presented = DTLSFingerprint.of(certificate: certificate, algorithm: self.remoteFingerprint.algorithm)
        else { return false }
        if presented == self.remoteFingerprint {
            self.peerFingerprintVerified = true
            return true
        }
        self.peerFingerprintMismatch = presented
        return false
    }
}

/// Our slot in each `SSL`'s ex data, holding the unretained ``DTLSEndpoint``. A global `let` is created
/// once, thread-safely (`CRYPTO_get_ex_new_index` itself is thread-safe too).
private let endpointExDataIndex: Int32 = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL, 0, nil, nil, nil, nil)

private func endpoint(of ssl: OpaquePointer?) -> DTLSEndpoint? {
    guard let ssl, let raw = SSL_get_ex_data(ssl, endpointExDataIndex) else { return nil }
    return Unmanaged<DTLSEndpoint>.fromOpaque(raw).takeUnretainedValue()
}

/// `SSL_verify_cb`: accept self-signed chains, but only if the leaf matches the SDP fingerprint.
private let dtlsVerifyCallback: @convention(c) (Int32, OpaquePointer?) -> Int32 = { _, storeContext in
    guard let storeContext,
        let sslRaw = X509_STORE_CTX_get_ex_data(storeContext, SSL_get_ex_data_X509_STORE_CTX_idx()),
        let owner = endpoint(of: OpaquePointer(sslRaw))
    else { return 0 }
    let accepted = owner.verifyPeer(
        certificate: X509_STORE_CTX_get_current_cert(storeContext),
        depth: X509_STORE_CTX_get_error_depth(storeContext)
    )
    // Self-signed is expected, so clear that complaint; a mismatch is reported as a rejected certificate,
    // which OpenSSL turns into a bad_certificate alert.
    X509_STORE_CTX_set_error(storeContext, accepted ? X509_V_OK : X509_V_ERR_CERT_REJECTED)
    return accepted ? 1 : 0
}

/// `DTLS_timer_cb`: the next retransmission timeout in microseconds (`previous` is 0 for a new flight).
private let dtlsTimerCallback: @convention(c) (OpaquePointer?, UInt32) -> UInt32 = { ssl, previous in
    guard let owner = endpoint(of: ssl) else { return 1_000_000 }
    if previous == 0 { return owner.initialTimeoutMicroseconds }
    let doubled = previous > UInt32.max / 2 ? UInt32.max : previous * 2
    return min(doubled, owner.maximumTimeoutMicroseconds)
}
