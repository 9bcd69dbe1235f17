// libFuzzer target for SRTP and SRTCP unprotect (BraidSecurity's OpenSSL implementation), both profiles.
//
// The input is a script of records, each fed to sessions made fresh for the input (so a finding replays
// alone), keyed with the master key the seeds were protected under (`FuzzSRTPKey`, below):
//
//   +----------+----------------+---------------------+
//   | selector | length (16 BE) | bytes (length, or   |   repeated to the end of the input
//   +----------+----------------+  what is left)      |
//                                +---------------------+
//   selector bit 0: profile (0 AES_CM_128_HMAC_SHA1_80, 1 AEAD_AES_128_GCM)
//            bit 1: RTCP instead of RTP
//            bit 2: in place (unprotect(inPlace:)) instead of into a second buffer
//            bit 3: treat the bytes as a plain packet: protect them, then unprotect that with a mirror
//                   session, which must give the same bytes back (or say the index was replayed)
//
// Unprotect must either throw an SRTPError or return the packet minus its trailer, with the header
// unchanged; nothing may trap. A failed check calls fatalError, which is how libFuzzer records a finding.
// Tests/BraidSecurityTests/SRTPFuzzSeedTests.swift writes the seeds in Corpus/SRTP/.
import BraidSecurity
import FuzzSupport

/// The master key of every session here, and of the seeds: key 01 02 … 10, salt 21 22 … (14 or 12 octets).
func fuzzSRTPKey(_ profile: SRTPProfile) -> SRTPMasterKey {
    try! SRTPMasterKey(
        key: (1...16).map { UInt8($0) },
        salt: (0..<profile.masterSaltLength).map { UInt8(0x21 + $0) },
        profile: profile
    )
}

/// One profile's sessions for one input: the target of the fuzzed bytes, and a sender with its mirror.
final class Sessions {
    let inbound: SRTPInboundSession
    let outbound: SRTPOutboundSession
    let mirror: SRTPInboundSession

    init(_ profile: SRTPProfile) {
        let key = fuzzSRTPKey(profile)
        self.inbound = try! SRTPInboundSession(profile: profile, masterKey: key)
        self.outbound = try! SRTPOutboundSession(profile: profile, masterKey: key)
        self.mirror = try! SRTPInboundSession(profile: profile, masterKey: key)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let input = FuzzScript.input(start, count) else { return 0 }
    var sessions: [Sessions?] = [nil, nil]
    for entry in FuzzScript.tailed(input) {
        let selector = entry.op
        let record = entry.bytes

        let profile: SRTPProfile = selector & 1 == 0 ? .aesCM128HMACSHA1_80 : .aeadAES128GCM
        let index = Int(selector & 1)
        if sessions[index] == nil { sessions[index] = Sessions(profile) }
        let session = sessions[index]!
        let isRTCP = selector & 2 != 0
        if selector & 8 != 0 {
            roundTrip(record, isRTCP: isRTCP, session)
        } else {
            unprotect(record, isRTCP: isRTCP, inPlace: selector & 4 != 0, session.inbound)
        }
    }
    return 0
}

/// Unprotects fuzzed bytes; checks the length and the untouched header of what is accepted.
func unprotect(_ packet: UnsafeRawBufferPointer, isRTCP: Bool, inPlace: Bool, _ inbound: SRTPInboundSession) {
    var buffer = [UInt8](packet)
    let trailer = isRTCP ? inbound.profile.rtcpTrailerLength : inbound.profile.rtpTrailerLength
    let result: Result<Int, SRTPError>
    if inPlace {
        result = buffer.withUnsafeMutableBytes { bytes in
            Result { () throws(SRTPError) in
                isRTCP ? try inbound.unprotectRTCP(inPlace: bytes) : try inbound.unprotectRTP(inPlace: bytes)
            }
        }
    } else {
        // A destination exactly as large as the packet: the smallest the API allows.
        result = buffer.withUnsafeMutableBytes { destination in
            Result { () throws(SRTPError) in
                isRTCP
                    ? try inbound.unprotectRTCP(packet, into: destination)
                    : try inbound.unprotectRTP(packet, into: destination)
            }
        }
    }
    guard case .success(let length) = result else { return }
    guard length == packet.count - trailer else {
        fatalError("unprotect returned \(length) bytes from \(packet.count), trailer \(trailer)")
    }
    let header = isRTCP ? 8 : 12
    guard buffer[..<header].elementsEqual(packet[..<header]) else { fatalError("unprotect changed the header") }
}

/// Protects fuzzed bytes as a plain packet and unprotects the result with the mirror session.
func roundTrip(_ plain: UnsafeRawBufferPointer, isRTCP: Bool, _ session: Sessions) {
    let profile = session.outbound.profile
    var protected = [UInt8](repeating: 0, count: plain.count + profile.rtcpTrailerLength)
    let sealed = protected.withUnsafeMutableBytes { destination in
        Result { () throws(SRTPError) in
            isRTCP
                ? try session.outbound.protectRTCP(plain, into: destination)
                : try session.outbound.protectRTP(plain, into: destination)
        }
    }
    guard case .success(let length) = sealed else { return }
    let expected = isRTCP ? profile.rtcpTrailerLength : profile.rtpTrailerLength
    guard length == plain.count + expected else { fatalError("protect returned \(length) from \(plain.count)") }
    var opened = [UInt8](repeating: 0, count: length)
    let result = protected.withUnsafeBytes { source in
        opened.withUnsafeMutableBytes { destination in
            Result { () throws(SRTPError) in
                let packet = UnsafeRawBufferPointer(rebasing: source[..<length])
                return isRTCP
                    ? try session.mirror.unprotectRTCP(packet, into: destination)
                    : try session.mirror.unprotectRTP(packet, into: destination)
            }
        }
    }
    switch result {
    case .success(let back):
        guard opened[..<back].elementsEqual(plain) else { fatalError("round trip changed the packet") }
    case .failure(let error) where error.code == .replayed || error.code == .replayTooOld:
        break  // a repeated index (repeat transmission is allowed on the sending side)
    case .failure(let error):
        fatalError("a packet this side protected did not unprotect: \(error)")
    }
}
