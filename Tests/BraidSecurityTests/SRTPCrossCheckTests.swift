@_spi(SRTPReference) @testable import BraidSecurity
import Testing

// The OpenSSL implementation against the libsrtp2 reference, packet by packet: the same input must give
// the same SRTP/SRTCP bytes, each must unprotect the other's packets, and both must give the same verdict
// (the packet, or the same error kind) for every packet delivered, in order or not, replayed, too old,
// tampered or keyed differently.

/// What one call gave, comparable across implementations.
enum Outcome: Equatable, CustomStringConvertible {
    case packet([UInt8])
    case error(SRTPError.Code)

    init(_ body: () throws -> [UInt8]) {
        do {
            self = .packet(try body())
        } catch let error as SRTPError {
            self = .error(error.code)
        } catch {
            self = .error(.library)
        }
    }

    var description: String {
        switch self {
        case .packet(let bytes): "packet(\(bytes.count) bytes)"
        case .error(let code): "error(\(code))"
        }
    }

    var bytes: [UInt8]? {
        if case .packet(let bytes) = self { return bytes }
        return nil
    }
}

/// The same direction on both implementations.
struct Both {
    let openSSL: SRTPOutboundSession
    let libsrtp: SRTPOutboundSession

    init(_ profile: SRTPProfile, key: SRTPMasterKey, allowRepeatTransmission: Bool = true) throws {
        self.openSSL = try SRTPOutboundSession(profile: profile, masterKey: key,
                                               allowRepeatTransmission: allowRepeatTransmission,
                                               implementation: .openSSL)
        self.libsrtp = try SRTPOutboundSession(profile: profile, masterKey: key,
                                               allowRepeatTransmission: allowRepeatTransmission,
                                               implementation: .libsrtp)
    }

    /// Protects with both; expects the same outcome and returns it.
    func protect(_ packet: [UInt8], rtcp: Bool = false, sourceLocation: SourceLocation = #_sourceLocation)
        -> Outcome
    {
        let a = Outcome { rtcp ? try self.openSSL.protectRTCP(packet) : try self.openSSL.protectRTP(packet) }
        let b = Outcome { rtcp ? try self.libsrtp.protectRTCP(packet) : try self.libsrtp.protectRTP(packet) }
        #expect(a == b, "protect: OpenSSL \(a), libsrtp \(b)", sourceLocation: sourceLocation)
        return a
    }
}

/// The receiving direction on both implementations.
struct BothInbound {
    let openSSL: SRTPInboundSession
    let libsrtp: SRTPInboundSession

    init(_ profile: SRTPProfile, key: SRTPMasterKey, replayWindowSize: Int = 128) throws {
        self.openSSL = try SRTPInboundSession(profile: profile, masterKey: key, replayWindowSize: replayWindowSize,
                                              implementation: .openSSL)
        self.libsrtp = try SRTPInboundSession(profile: profile, masterKey: key, replayWindowSize: replayWindowSize,
                                              implementation: .libsrtp)
    }

    /// Unprotects with both; expects the same outcome and returns OpenSSL's. With `sameErrorKind` false,
    /// only that both fail: libsrtp reports an SRTP packet too short for its tag as
    /// `srtp_err_status_parse_err` or `cipher_fail` (``SRTPError/Code/library``), after its replay check;
    /// the OpenSSL implementation as ``SRTPError/Code/badParameter``, before it.
    @discardableResult
    func unprotect(
        _ packet: [UInt8],
        rtcp: Bool = false,
        sameErrorKind: Bool = true,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> Outcome {
        let a = Outcome { rtcp ? try self.openSSL.unprotectRTCP(packet) : try self.openSSL.unprotectRTP(packet) }
        let b = Outcome { rtcp ? try self.libsrtp.unprotectRTCP(packet) : try self.libsrtp.unprotectRTP(packet) }
        if sameErrorKind {
            #expect(a == b, "unprotect: OpenSSL \(a), libsrtp \(b)", sourceLocation: sourceLocation)
        } else {
            #expect(a.bytes == nil && b.bytes == nil, "OpenSSL \(a), libsrtp \(b)", sourceLocation: sourceLocation)
        }
        return a
    }
}

/// An RTP packet: V=2, optional CSRCs and a one-byte-header extension of `extensionWords` words.
func makeRTP(
    ssrc: UInt32,
    sequence: UInt16,
    payloadLength: Int,
    csrcs: Int = 0,
    extensionWords: Int = -1,
    padding: Bool = false
) -> [UInt8] {
    var packet: [UInt8] = [
        0x80 | (padding ? 0x20 : 0) | (extensionWords >= 0 ? 0x10 : 0) | UInt8(csrcs), 96,
        UInt8(sequence >> 8), UInt8(sequence & 0xff),
    ]
    let timestamp = UInt32(sequence) &* 960
    packet += [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: timestamp >> $0) }
    packet += [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: ssrc >> $0) }
    for index in 0..<csrcs { packet += [0xc0, 0, 0, UInt8(index)] }
    if extensionWords >= 0 {
        packet += [0xbe, 0xde, 0, UInt8(extensionWords)]
        for word in 0..<extensionWords { packet += [0x10, UInt8(word), 0, 0] }
    }
    packet += (0..<payloadLength).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(sequence)) }
    if padding { packet += [0, 0, 0, 4] }
    return packet
}

/// An RTCP receiver report from `ssrc` with one report block, then an SDES CNAME: a compound packet.
func makeRTCP(ssrc: UInt32, fill: UInt8) -> [UInt8] {
    let ssrcBytes = [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: ssrc >> $0) }
    let receiverReport = [0x81, 201, 0, 7] + ssrcBytes + [0x12, 0x34, 0x56, 0x78]
        + [UInt8](repeating: fill, count: 20)
    let sdes = [0x81, 202, 0, 3] + ssrcBytes + [1, 4] + Array("node".utf8) + [0, 0]
    return receiverReport + sdes
}

/// SplitMix64: a small deterministic generator, so a failing run can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("SRTP OpenSSL implementation against the libsrtp2 reference")
struct SRTPCrossCheckTests {
    @Test("identical SRTP and SRTCP for the same input, each unprotects the other's, across a rollover",
          arguments: SRTPProfile.allCases)
    func identicalAndInteroperable(profile: SRTPProfile) throws {
        let key = try testMasterKey(profile)
        let sender = try Both(profile, key: key)
        // Each receiver gets the other implementation's packets (the bytes are the same when the first
        // check holds; this is the interoperability claim on its own).
        let openSSLReceiver = try SRTPInboundSession(profile: profile, masterKey: key, implementation: .openSSL)
        let libsrtpReceiver = try SRTPInboundSession(profile: profile, masterKey: key, implementation: .libsrtp)
        let shapes: [(csrcs: Int, extensionWords: Int, payload: Int, padding: Bool)] = [
            (0, -1, 1200, false), (0, 2, 160, false), (2, 0, 17, false), (15, 5, 0, false), (0, -1, 1, true),
            (1, 1, 16, false),
        ]
        // Sequence numbers from 65530 across the rollover to 20: the ROC becomes 1 on both sides.
        var sequence: UInt16 = 65530
        for step in 0..<27 {
            for (number, ssrc) in [UInt32(0x1122_3344), 0xdead_beef, 7].enumerated() {
                let shape = shapes[(step + number) % shapes.count]
                let plain = makeRTP(ssrc: ssrc, sequence: sequence &+ UInt16(number), payloadLength: shape.payload,
                                    csrcs: shape.csrcs, extensionWords: shape.extensionWords,
                                    padding: shape.padding)
                let a = try sender.openSSL.protectRTP(plain)
                let b = try sender.libsrtp.protectRTP(plain)
                #expect(a == b, "SRTP differs at sequence \(sequence &+ UInt16(number)), SSRC \(ssrc)")
                #expect(try libsrtpReceiver.unprotectRTP(a) == plain)
                #expect(try openSSLReceiver.unprotectRTP(b) == plain)

                let report = makeRTCP(ssrc: ssrc, fill: UInt8(truncatingIfNeeded: step))
                let c = try sender.openSSL.protectRTCP(report)
                let d = try sender.libsrtp.protectRTCP(report)
                #expect(c == d, "SRTCP differs at step \(step), SSRC \(ssrc)")
                #expect(try libsrtpReceiver.unprotectRTCP(c) == report)
                #expect(try openSSLReceiver.unprotectRTCP(d) == report)
            }
            sequence &+= 1
        }
        #expect(sequence == 21)
    }

    @Test("the same verdicts for reordered, replayed, too-old, tampered and differently keyed packets",
          arguments: SRTPProfile.allCases)
    func inboundVerdicts(profile: SRTPProfile) throws {
        let key = try testMasterKey(profile)
        let sender = try Both(profile, key: key)
        let receiver = try BothInbound(profile, key: key)
        let ssrc: UInt32 = 0x0bad_cafe
        var protected: [UInt16: [UInt8]] = [:]
        for sequence in UInt16(65500)...65535 {
            protected[sequence] = sender.protect(makeRTP(ssrc: ssrc, sequence: sequence, payloadLength: 100)).bytes
        }
        for sequence in UInt16(0)..<300 {
            protected[sequence] = sender.protect(makeRTP(ssrc: ssrc, sequence: sequence, payloadLength: 100)).bytes
        }
        func deliver(_ sequence: UInt16, sourceLocation: SourceLocation = #_sourceLocation) -> Outcome {
            receiver.unprotect(protected[sequence]!, sourceLocation: sourceLocation)
        }
        #expect(deliver(65500).bytes != nil)
        #expect(deliver(65502).bytes != nil)
        #expect(deliver(65501).bytes != nil, "a reordered packet inside the window is accepted")
        #expect(deliver(65501) == .error(.replayed))
        for sequence in UInt16(65503)...65535 { #expect(deliver(sequence).bytes != nil) }
        // Across the rollover (ROC 0 -> 1), with a packet from before it arriving after.
        #expect(deliver(2).bytes != nil)
        #expect(deliver(0).bytes != nil)
        #expect(deliver(65534) == .error(.replayed))
        #expect(deliver(1).bytes != nil)
        // Far ahead: the packets of the previous ROC fall out of the 128-packet window.
        #expect(deliver(250).bytes != nil)
        #expect(deliver(3) == .error(.replayTooOld))
        #expect(deliver(65520) == .error(.replayTooOld))
        #expect(deliver(122) == .error(.replayTooOld), "index 250 - 128")
        #expect(deliver(123).bytes != nil, "index 250 - 127, the oldest in the window")
        #expect(deliver(249).bytes != nil)

        // Tampering: header, payload, tag.
        let good = protected[260]!
        for index in [1, 5, 30, good.count - 1] {
            var tampered = good
            tampered[index] ^= 0x10
            #expect(receiver.unprotect(tampered) == .error(.authenticationFailed), "byte \(index)")
        }
        #expect(receiver.unprotect(good).bytes != nil, "a failed forgery leaves the genuine packet acceptable")

        // A packet protected under another key, from a known SSRC and from a new one.
        var otherKeyBytes = key.key
        otherKeyBytes[0] ^= 1
        let other = try Both(profile, key: SRTPMasterKey(key: otherKeyBytes, salt: key.salt, profile: profile))
        let forged = other.protect(makeRTP(ssrc: ssrc, sequence: 270, payloadLength: 50)).bytes!
        #expect(receiver.unprotect(forged) == .error(.authenticationFailed))
        let forgedNew = other.protect(makeRTP(ssrc: 0x5555, sequence: 270, payloadLength: 50)).bytes!
        #expect(receiver.unprotect(forgedNew) == .error(.authenticationFailed))
        #expect(receiver.openSSL.streamCount == 1, "a packet that fails leaves no state for its SSRC")
        #expect(deliver(270).bytes != nil)

        // Truncated packets and headers running past the end.
        #expect(receiver.unprotect(Array(good[..<11])) == .error(.badParameter))
        #expect(receiver.unprotect(makeRTP(ssrc: ssrc, sequence: 280, payloadLength: 0, csrcs: 3),
                                   sameErrorKind: false) == .error(.badParameter), "no room for the tag")
        #expect(receiver.unprotect(Array(good[..<(good.count - profile.rtpTrailerLength - 100)]),
                                   sameErrorKind: false) == .error(.badParameter))
        var longExtension = makeRTP(ssrc: ssrc, sequence: 281, payloadLength: 40, extensionWords: 1)
        longExtension[15] = 200
        #expect(receiver.unprotect(longExtension) == .error(.badParameter))
    }

    @Test("the same SRTCP verdicts: reordered, replayed, too old, tampered, E flag, wrong key",
          arguments: SRTPProfile.allCases)
    func rtcpVerdicts(profile: SRTPProfile) throws {
        let key = try testMasterKey(profile)
        let sender = try Both(profile, key: key)
        let receiver = try BothInbound(profile, key: key)
        let packets = (0..<300).map { sender.protect(makeRTCP(ssrc: 42, fill: UInt8($0 & 0xff)), rtcp: true).bytes! }
        // packets[n] carries SRTCP index n + 1.
        #expect(receiver.unprotect(packets[0], rtcp: true).bytes != nil)
        #expect(receiver.unprotect(packets[2], rtcp: true).bytes != nil)
        #expect(receiver.unprotect(packets[1], rtcp: true).bytes != nil)
        #expect(receiver.unprotect(packets[1], rtcp: true) == .error(.replayed))
        #expect(receiver.unprotect(packets[200], rtcp: true).bytes != nil)
        #expect(receiver.unprotect(packets[72], rtcp: true) == .error(.replayTooOld))
        #expect(receiver.unprotect(packets[73], rtcp: true).bytes != nil, "index 201 - 127")
        #expect(receiver.unprotect(packets[150], rtcp: true).bytes != nil)
        #expect(receiver.unprotect(packets[150], rtcp: true) == .error(.replayed))
        var tampered = packets[250]
        tampered[tampered.count / 2] ^= 1
        #expect(receiver.unprotect(tampered, rtcp: true) == .error(.authenticationFailed))
        var tamperedTag = packets[250]
        tamperedTag[profile == .aeadAES128GCM ? tamperedTag.count - 5 : tamperedTag.count - 1] ^= 0x80
        #expect(receiver.unprotect(tamperedTag, rtcp: true) == .error(.authenticationFailed))
        // E flag cleared: GCM authenticates the E+index word (tag mismatch); AES-CM refuses an unencrypted
        // packet outright (libsrtp: srtp_err_status_cant_check).
        var clear = packets[251]
        clear[profile == .aeadAES128GCM ? clear.count - 4 : clear.count - 14] &= 0x7f
        #expect(receiver.unprotect(clear, rtcp: true)
            == .error(profile == .aeadAES128GCM ? .authenticationFailed : .library))
        #expect(receiver.unprotect(packets[250], rtcp: true).bytes != nil)
        // Keyed differently: from the known SSRC and from a new one.
        var otherKeyBytes = key.key
        otherKeyBytes[15] ^= 0x80
        let other = try Both(profile, key: SRTPMasterKey(key: otherKeyBytes, salt: key.salt, profile: profile))
        let early = other.protect(makeRTCP(ssrc: 42, fill: 9), rtcp: true).bytes!
        #expect(receiver.unprotect(early, rtcp: true) == .error(.replayTooOld), "index 1: the replay check comes first")
        var forged = early
        for _ in 0..<260 { forged = other.protect(makeRTCP(ssrc: 42, fill: 9), rtcp: true).bytes! }
        #expect(receiver.unprotect(forged, rtcp: true) == .error(.authenticationFailed), "index 261")
        let forgedNew = other.protect(makeRTCP(ssrc: 43, fill: 9), rtcp: true).bytes!
        #expect(receiver.unprotect(forgedNew, rtcp: true) == .error(.authenticationFailed))
        #expect(receiver.openSSL.streamCount == 1)
        #expect(receiver.unprotect(Array(packets[3][..<11]), rtcp: true) == .error(.badParameter))
        #expect(receiver.unprotect(Array(packets[3][..<(8 + profile.rtcpTrailerLength - 1)]), rtcp: true)
            == .error(.badParameter))
    }

    @Test("the same sending verdicts: repeat transmission allowed or not, an index older than the window",
          arguments: SRTPProfile.allCases)
    func outboundVerdicts(profile: SRTPProfile) throws {
        let key = try testMasterKey(profile)
        for allowRepeat in [true, false] {
            let sender = try Both(profile, key: key, allowRepeatTransmission: allowRepeat)
            let first = sender.protect(makeRTP(ssrc: 9, sequence: 1000, payloadLength: 200))
            #expect(first.bytes != nil)
            _ = sender.protect(makeRTP(ssrc: 9, sequence: 1001, payloadLength: 200))
            let again = sender.protect(makeRTP(ssrc: 9, sequence: 1000, payloadLength: 200))
            #expect(again == (allowRepeat ? first : .error(.replayed)), "repeat allowed: \(allowRepeat)")
            _ = sender.protect(makeRTP(ssrc: 9, sequence: 1200, payloadLength: 200))
            #expect(sender.protect(makeRTP(ssrc: 9, sequence: 1001, payloadLength: 200)) == .error(.replayTooOld))
            #expect(sender.protect(makeRTP(ssrc: 9, sequence: 1100, payloadLength: 200)).bytes != nil)
            #expect(sender.protect(Array(makeRTP(ssrc: 9, sequence: 1300, payloadLength: 0)[..<11]))
                == .error(.badParameter))
            #expect(sender.protect(makeRTP(ssrc: 9, sequence: 1301, payloadLength: 0, extensionWords: 0)).bytes
                != nil, "an empty extension and no payload")
            var shortExtension = makeRTP(ssrc: 9, sequence: 1302, payloadLength: 4, extensionWords: 1)
            shortExtension[15] = 3
            #expect(sender.protect(shortExtension) == .error(.badParameter))
            #expect(sender.protect([0x80, 200, 0, 1, 0, 0, 0], rtcp: true) == .error(.badParameter))
        }
    }

    @Test("random streams: the same packets and verdicts, send and receive, several window sizes",
          arguments: [64, 128, 200, 1000])
    func randomStreams(replayWindowSize: Int) throws {
        var random = SplitMix64(state: UInt64(replayWindowSize))
        for profile in SRTPProfile.allCases {
            let key = try testMasterKey(profile)
            let sender = try Both(profile, key: key)
            let receiver = try BothInbound(profile, key: key, replayWindowSize: replayWindowSize)
            var sequences: [UInt32: UInt16] = [1: 65000, 2: 100, 3: 40000]
            var sent: [[UInt8]] = []
            var sendErrors = 0
            for _ in 0..<1500 {
                let ssrc = UInt32.random(in: 1...3, using: &random)
                var sequence = sequences[ssrc]!
                switch Int.random(in: 0..<100, using: &random) {
                case 0..<80: sequence &+= 1
                case 80..<88: sequence &+= UInt16.random(in: 2...60, using: &random)
                case 88..<95: sequence &-= UInt16.random(in: 1...300, using: &random)
                case 95..<98: break  // the same sequence number again
                default: sequence &+= UInt16.random(in: 1000...40000, using: &random)
                }
                sequences[ssrc] = sequence
                let payload = Int.random(in: 0...64, using: &random)
                if let packet = sender.protect(makeRTP(ssrc: ssrc, sequence: sequence, payloadLength: payload)).bytes {
                    sent.append(packet)
                } else {
                    sendErrors += 1
                }
                if Int.random(in: 0..<10, using: &random) == 0,
                    let report = sender.protect(makeRTCP(ssrc: ssrc, fill: UInt8(payload)), rtcp: true).bytes
                {
                    sent.append(report)
                }
            }
            // Deliver with local reordering, duplicates and losses.
            var delivery: [[UInt8]] = []
            for packet in sent {
                switch Int.random(in: 0..<100, using: &random) {
                case 0..<5: continue  // lost
                case 5..<10 where !delivery.isEmpty:
                    delivery.insert(packet, at: max(0, delivery.count - Int.random(in: 1...20, using: &random)))
                case 10..<14: delivery += [packet, packet]
                default: delivery.append(packet)
                }
            }
            // And some very late: packets from the first half again at the end, most beyond the window.
            for _ in 0..<60 { delivery.append(sent[Int.random(in: 0..<(sent.count / 2), using: &random)]) }
            var verdicts: [String: Int] = [:]
            for packet in delivery {
                let isRTCP = packet[1] == 201
                let outcome = receiver.unprotect(packet, rtcp: isRTCP)
                verdicts[outcome.bytes == nil ? "\(outcome)" : "accepted", default: 0] += 1
            }
            // The walk must have exercised every verdict, or the comparison above proves little.
            #expect(verdicts["accepted", default: 0] > delivery.count / 2, "\(profile): \(verdicts)")
            #expect(verdicts["error(replayed)", default: 0] > 10, "\(profile): \(verdicts)")
            #expect(verdicts["error(replayTooOld)", default: 0] > 10, "\(profile): \(verdicts)")
            #expect(sendErrors > 10, "\(profile): \(sendErrors) packets too old to send")
        }
    }

    @Test("overlapping source and destination, in place and shifted", arguments: SRTPProfile.allCases)
    func overlappingBuffers(profile: SRTPProfile) throws {
        let key = try testMasterKey(profile)
        let sender = try SRTPOutboundSession(profile: profile, masterKey: key)
        let reference = try SRTPOutboundSession(profile: profile, masterKey: key, implementation: .libsrtp)
        let receiver = try SRTPInboundSession(profile: profile, masterKey: key)
        for (number, shift) in [0, 4, -4, 1].enumerated() {
            let plain = makeRTP(ssrc: 77, sequence: UInt16(number), payloadLength: 300)
            let expected = try reference.protectRTP(plain)
            // One buffer holds the packet at offset 8; the destination starts `shift` bytes away.
            var buffer = [UInt8](repeating: 0, count: plain.count + 64)
            buffer.replaceSubrange(8..<(8 + plain.count), with: plain)
            let written = try buffer.withUnsafeMutableBytes { raw in
                try sender.protectRTP(
                    UnsafeRawBufferPointer(rebasing: raw[8..<(8 + plain.count)]),
                    into: UnsafeMutableRawBufferPointer(rebasing: raw[(8 + shift)...]))
            }
            #expect(Array(buffer[(8 + shift)..<(8 + shift + written)]) == expected, "shift \(shift)")
            let back = try buffer.withUnsafeMutableBytes { raw in
                try receiver.unprotectRTP(
                    UnsafeRawBufferPointer(rebasing: raw[(8 + shift)..<(8 + shift + written)]),
                    into: UnsafeMutableRawBufferPointer(rebasing: raw[(8 + shift - shift / 2)...]))
            }
            #expect(Array(buffer[(8 + shift - shift / 2)..<(8 + shift - shift / 2 + back)]) == plain)
        }
    }
}
