import BraidICE
import BraidSDP
import BraidSecurity
import NIOConcurrencyHelpers
import NIOCore

/// Why a WHIP request could not create a session; ``WHIPRoutes`` maps each kind to an HTTP status.
public struct WHIPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The class of failure.
    public enum Kind: Sendable, Equatable {
        /// The offer is not valid SDP or asks for something the node does not do (400).
        case badOffer
        /// No offered codec is one the node supports (406; the reason names what was offered).
        case noCommonCodec
        /// The media socket is not bound, or the node holds its maximum of sessions (503).
        case unavailable
    }

    public let kind: Kind
    /// A sentence for the response body.
    public let reason: String

    public init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    public var description: String { "WHIPError.\(self.kind): \(self.reason)" }
}

/// A session created by ``WebRTCSessions/createIngestSession(room:offer:)``.
public struct WHIPSessionCreated: Sendable, Equatable {
    /// The session's resource id: `Location: /whip/{room}/{id}`.
    public var id: String
    /// The room from the URL.
    public var room: String
    /// The SDP answer (`application/sdp`).
    public var answer: String
    /// The entity tag of the ICE session (RFC 9725 §4.3.1): changes with an ICE restart.
    public var etag: String
}

/// The node's WebRTC sessions, as seen from outside the media event loop.
///
/// Thread-safe: the HTTP handlers call it from any task. Each call builds what it can off the loop (SDP
/// parsing and answer generation are pure) and hops onto the media channel's event loop only to change
/// or read the ``WebRTCSessionStore``, which the packet path owns.
///
/// The node has one DTLS certificate, generated when the media socket starts (``MediaService/run()``);
/// its fingerprint goes into every answer.
public final class WebRTCSessions: Sendable {
    /// Most sessions one node holds by default.
    public static let defaultCapacity = 1024

    /// The addresses announced as host candidates (one candidate each, with the bound media port).
    public let advertisedAddresses: [String]
    /// Most sessions held at once.
    public let capacity: Int

    private struct Attached {
        let store: NIOLoopBound<WebRTCSessionStore>
        let eventLoop: any EventLoop
        let certificate: DTLSCertificate
        /// The bound media port, known once the socket is bound (after the channel initializer ran).
        var port: Int?
    }

    private let attached = NIOLockedValueBox<Attached?>(nil)
    private let timeouts = NIOLockedValueBox(ICELiteAgent.Timeouts.default)

    /// The consent timeouts given to sessions created from now on (RFC 7675: 30 s to failure by default).
    /// A session whose agent reaches ``ICELiteAgent/State/failed`` is removed within a second.
    public var iceTimeouts: ICELiteAgent.Timeouts {
        get { self.timeouts.withLockedValue { $0 } }
        set { self.timeouts.withLockedValue { $0 = newValue } }
    }

    /// - Parameters:
    ///   - advertisedAddresses: ``NodeConfiguration/Media/advertisedAddresses`` (never empty once resolved).
    ///   - capacity: most sessions at once.
    public init(advertisedAddresses: [String], capacity: Int = WebRTCSessions.defaultCapacity) {
        self.advertisedAddresses = advertisedAddresses
        self.capacity = capacity
    }

    /// The fingerprint of the node's certificate, once the media socket runs.
    public var certificateFingerprint: DTLSFingerprint? {
        self.attached.withLockedValue { $0?.certificate.fingerprint }
    }

    /// Creates the store for a newly bound media channel. Called on the channel's event loop.
    func attach(channel: any Channel, certificate: DTLSCertificate) -> WebRTCSessionStore {
        let store = WebRTCSessionStore(channel: channel, certificate: certificate, capacity: self.capacity)
        store.start()
        let bound = NIOLoopBound(store, eventLoop: channel.eventLoop)
        self.attached.withLockedValue {
            $0 = Attached(store: bound, eventLoop: channel.eventLoop, certificate: certificate, port: nil)
        }
        // When the socket closes, every session's DTLS and SRTP state is freed with the store.
        channel.closeFuture.whenComplete { [attached = self.attached] _ in
            bound.value.close()
            attached.withLockedValue { $0 = nil }
        }
        return store
    }

    /// Records the bound media port, which every host candidate carries.
    func mediaBound(port: Int?) {
        self.attached.withLockedValue { $0?.port = port }
    }

    /// Creates an ingest (WHIP, RFC 9725 §4.2) session for `offer` in `room` and returns its answer.
    ///
    /// - Throws: ``WHIPError`` with `.badOffer` for SDP that does not parse or that the node cannot
    ///   answer, `.noCommonCodec` when no offered codec is supported, `.unavailable` when the media socket
    ///   is not running or the node is full.
    public func createIngestSession(room: String, offer: String) async throws(WHIPError) -> WHIPSessionCreated {
        let session: SessionDescription
        do throws(SDPError) {
            session = try SessionDescription(parsing: offer)
        } catch {
            throw WHIPError(.badOffer, "malformed SDP offer: \(error)")
        }
        guard let attached = self.attached.withLockedValue({ $0 }), let bound = attached.port,
            let port = UInt16(exactly: bound)
        else {
            throw WHIPError(.unavailable, "the media socket is not running")
        }

        let local = ICECredentials.random()
        let candidates = self.advertisedAddresses.enumerated().map { index, address in
            SDPCandidate(
                foundation: "\(index + 1)",
                priority: ICECandidate.priority(
                    typePreference: ICECandidate.hostTypePreference,
                    localPreference: UInt16(clamping: 65535 - index),
                    component: 1
                ),
                address: address,
                port: port
            )
        }
        let ours = attached.certificate.fingerprint
        let parameters = SDPLocalParameters(
            iceUfrag: local.ufrag,
            icePwd: local.password,
            fingerprint: SDPFingerprint(algorithm: ours.algorithm.rawValue, bytes: ours.bytes),
            candidates: candidates,
            role: .receive,
            sessionID: "\(UInt64.random(in: 1...(UInt64(1) << 62)))"
        )
        let answer: SDPAnswer
        do throws(SDPError) {
            answer = try SDPAnswerBuilder(local: parameters).answer(to: session)
        } catch where error.code == .noCommonCodec {
            throw WHIPError(.noCommonCodec, error.reason)
        } catch {
            throw WHIPError(.badOffer, "cannot answer the offer: \(error)")
        }

        let remote: ICECredentials
        do throws(ICEError) {
            remote = try ICECredentials(ufrag: answer.remote.iceUfrag, password: answer.remote.icePwd)
        } catch {
            throw WHIPError(.badOffer, "bad ICE credentials in the offer: \(error.reason)")
        }
        let remoteFingerprint: DTLSFingerprint
        do {
            guard let algorithm = DTLSFingerprint.Algorithm(rawValue: answer.remote.fingerprint.algorithm.lowercased())
            else {
                throw WHIPError(.badOffer, "unsupported fingerprint hash \(answer.remote.fingerprint.algorithm)")
            }
            remoteFingerprint = try DTLSFingerprint(algorithm: algorithm, bytes: answer.remote.fingerprint.bytes)
        } catch let error as WHIPError {
            throw error
        } catch {
            throw WHIPError(.badOffer, "bad a=fingerprint in the offer: \(error)")
        }

        let id = Self.randomID()
        let store = attached.store
        let timeouts = self.iceTimeouts
        do {
            try await attached.eventLoop.submit {
                try store.value.add(
                    id: id,
                    room: room,
                    local: local,
                    remote: remote,
                    remoteFingerprint: remoteFingerprint,
                    timeouts: timeouts
                )
            }.get()
        } catch let error as ICEError where error.code == .tableFull {
            throw WHIPError(.unavailable, "the node holds its maximum of \(self.capacity) sessions")
        } catch {
            throw WHIPError(.unavailable, "cannot create the session: \(error)")
        }
        return WHIPSessionCreated(id: id, room: room, answer: answer.text, etag: "\"\(local.ufrag)\"")
    }

    /// Ends the session `id` of `room` and frees its state; false when there is no such session.
    public func endSession(room: String, id: String) async -> Bool {
        guard let attached = self.attached.withLockedValue({ $0 }) else { return false }
        let store = attached.store
        return (try? await attached.eventLoop.submit { store.value.remove(id: id, room: room) }.get()) ?? false
    }

    /// Every session's status, read on the media event loop.
    public func statuses() async -> [WebRTCSessionStatus] {
        guard let attached = self.attached.withLockedValue({ $0 }) else { return [] }
        let store = attached.store
        return (try? await attached.eventLoop.submit { store.value.statuses() }.get()) ?? []
    }

    /// 128 random bits in hex: unguessable, so a resource URL is its own capability.
    private static func randomID() -> String {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        func hex(_ value: UInt64) -> String {
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }
        return hex(high) + hex(low)
    }
}
