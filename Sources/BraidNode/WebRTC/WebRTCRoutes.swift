import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Decides whether a WHIP or WHEP request may create, change or end a session.
///
/// - Parameters:
///   - bearerToken: the token of an `Authorization: Bearer <token>` header (RFC 9725 §4.5, RFC 6750), or
///     nil when the request has none.
///   - room: the room in the URL.
/// - Returns: true to go on; false answers `401 Unauthorized`.
public typealias WebRTCAuthorizer = @Sendable (_ bearerToken: String?, _ room: String) async -> Bool

/// Picks a better node for a new WHIP or WHEP session (a node in a cluster: the scheduler's placement).
///
/// - Parameters:
///   - region, latitude, longitude: where the client says it is (the `region`, `latitude` and
///     `longitude` query parameters).
/// - Returns: the base URL (`http://host:port`) of the node the client should use instead, or nil to serve
///   it here.
public typealias WebRTCRedirector =
    @Sendable (_ region: String?, _ latitude: Double?, _ longitude: Double?) async -> String?

/// The former name of ``WebRTCAuthorizer``.
public typealias WHIPAuthorizer = WebRTCAuthorizer

/// The former name of ``WebRTCRoutes``.
public typealias WHIPRoutes = WebRTCRoutes

/// The WebRTC signalling endpoints: WHIP ingest (RFC 9725), WHEP egress (draft-ietf-wish-whep), trickle ICE
/// and ICE restarts by `PATCH`, and the operator's per-session bitrate cap.
///
/// | method and path | what |
/// | --- | --- |
/// | `POST /whip/{room}` | publish: SDP offer in, `201` + answer, `Location: /whip/{room}/{id}`, `ETag` |
/// | `POST /whep/{room}` | play: recvonly offer in, `201` + sendonly answer, `Location: /whep/{room}/{id}` |
/// | `POST /whep/{room}?participant={whip-id}` | play, never receiving the tracks of WHIP session `whip-id` |
/// | `POST /whip/{room}?region=R` (or `latitude`, `longitude`), `/whep/...` | in a cluster: `307` to a node nearer the client, if one is better |
/// | `PATCH /whip/{room}/{id}`, `/whep/...` | `application/trickle-ice-sdpfrag`: `204` trickle, `200` restart |
/// | `DELETE /whip/{room}/{id}`, `/whep/...` | `200`, the session ends |
/// | `OPTIONS` on all of them | CORS preflight, `204` |
/// | `POST /api/v1/sessions/{id}/max-bitrate` | JSON `{"bps": 300000}` sets the cap: `204` |
/// | `DELETE /api/v1/sessions/{id}/max-bitrate` | lifts the cap: `204` |
///
/// Subscriptions use pre-allocated transceivers: a WHEP subscriber offers as many recvonly audio and video
/// transceivers as tracks it wants to receive; the node fills them with the room's tracks, including tracks
/// published later, without renegotiation. A client that also publishes names its WHIP session (the last
/// path component of the WHIP `Location`) in the WHEP request's `participant` query parameter, so that its
/// own tracks never fill its slots; it must publish first.
///
/// Errors carry a one-line reason in a `text/plain` body: 400 malformed or unanswerable offer or fragment,
/// or a `participant` that is no live WHIP session of the room, 401 refused by the authorizer, 404 unknown
/// session, 406 no common codec, 412 `If-Match` does not match the ETag, 413 body too large, 415 wrong
/// content type, 428 `PATCH` without `If-Match`, 503 node full or media socket down. Every response
/// carries `Access-Control-Allow-Origin: *` and exposes `Location` and `ETag`, so a page from another
/// origin can publish and play.
public enum WebRTCRoutes {
    /// The authorizer of a node on loopback: every request may publish and play. A node reachable by others
    /// should pass its own (``NodeServer/init(configuration:logger:whipAuthorizer:)``).
    public static let allowAll: WebRTCAuthorizer = { _, _ in true }

    /// Longest room name accepted.
    public static let maximumRoomLength = 128

    /// The `Content-Type` of a trickle-ICE `PATCH` body and of an ICE-restart answer (RFC 8840 §9.1).
    public static let trickleContentType = "application/trickle-ice-sdpfrag"

    /// Largest bitrate cap accepted, in bits per second (100 Gbit/s: anything larger is a typo).
    public static let maximumBitrateCap = 100_000_000_000

    /// Adds the WHIP, WHEP, `PATCH` and max-bitrate routes to `router`.
    ///
    /// - Parameter redirect: in a cluster, the placement that may send a client that declares its location
    ///   to a better node (RFC 9725 §4.5 allows `307`; the client repeats the same `POST` there).
    public static func register(
        on router: Router<BasicRequestContext>,
        sessions: WebRTCSessions,
        authorize: @escaping WebRTCAuthorizer = WebRTCRoutes.allowAll,
        redirect: WebRTCRedirector? = nil
    ) {
        for direction in [WebRTCDirection.publish, .subscribe] {
            Self.registerSignalling(
                on: router, direction: direction, sessions: sessions, authorize: authorize, redirect: redirect)
        }
        Self.registerBitrateCap(on: router, sessions: sessions)
    }

    /// The node a client that declared its location should use instead of this one, if any.
    private static func betterNode(_ request: Request, redirect: WebRTCRedirector) async -> String? {
        let query = request.uri.queryParameters
        let region = query.get("region")
        let latitude = query.get("latitude").flatMap(Double.init)
        let longitude = query.get("longitude").flatMap(Double.init)
        guard region != nil || (latitude != nil && longitude != nil) else { return nil }
        return await redirect(region, latitude, longitude)
    }

    /// `whip` or `whep`.
    static func prefix(_ direction: WebRTCDirection) -> String {
        direction == .publish ? "whip" : "whep"
    }

    private static func registerSignalling(
        on router: Router<BasicRequestContext>,
        direction: WebRTCDirection,
        sessions: WebRTCSessions,
        authorize: @escaping WebRTCAuthorizer,
        redirect: WebRTCRedirector?
    ) {
        let prefix = Self.prefix(direction)
        let name = prefix.uppercased()
        router.on("/\(prefix)/:room", method: .options) { _, _ in Self.preflight(methods: "POST, OPTIONS") }
        router.on("/\(prefix)/:room/:session", method: .options) { _, _ in
            Self.preflight(methods: "DELETE, PATCH, OPTIONS")
        }
        router.post("/\(prefix)/:room") { request, context in
            let room = context.parameters.get("room") ?? ""
            guard Self.isValidRoom(room) else {
                return Self.plain(
                    .badRequest,
                    "the room name must be 1 to \(Self.maximumRoomLength) letters, digits, '-', '_' or '.'"
                )
            }
            if let refused = await Self.refuse(request, room: room, authorize: authorize) { return refused }
            if let redirect, let target = await Self.betterNode(request, redirect: redirect) {
                var headers = Self.corsHeaders()
                let query = request.uri.query.map { "?" + $0 } ?? ""
                headers[.location] = "\(target)/\(prefix)/\(room)\(query)"
                return Response(status: .temporaryRedirect, headers: headers)
            }
            guard Self.isSDP(request.headers[.contentType]) else {
                return Self.plain(
                    .unsupportedMediaType,
                    "a \(name) offer must be Content-Type: application/sdp, not "
                        + (request.headers[.contentType] ?? "none")
                )
            }
            let body = try await request.body.collect(upTo: DashboardRoutes.maximumRequestBodyBytes)
            guard body.readableBytes > 0 else { return Self.plain(.badRequest, "the request has no SDP offer") }
            let offer = String(buffer: body)
            // `?participant={whip-id}`: the WHIP session this WHEP session belongs to (validated by createSession).
            let participants = request.uri.queryParameters[values: "participant"]
            guard participants.count <= 1 else {
                return Self.plain(.badRequest, "at most one participant parameter, got \(participants.count)")
            }
            do throws(WebRTCSessionError) {
                let created = try await sessions.createSession(
                    direction: direction, room: room, offer: offer, participant: participants.first.map(String.init))
                var headers = Self.corsHeaders()
                headers[.contentType] = "application/sdp"
                headers[.location] = "/\(prefix)/\(room)/\(created.id)"
                headers[.eTag] = created.etag
                return Response(
                    status: .created,
                    headers: headers,
                    body: ResponseBody(byteBuffer: ByteBuffer(string: created.answer))
                )
            } catch {
                return Self.response(for: error)
            }
        }
        router.delete("/\(prefix)/:room/:session") { request, context in
            let room = context.parameters.get("room") ?? ""
            let id = context.parameters.get("session") ?? ""
            if let refused = await Self.refuse(request, room: room, authorize: authorize) { return refused }
            guard await sessions.endSession(direction: direction, room: room, id: id) else {
                return Self.plain(.notFound, "no \(name) session \(id) in room \(room)")
            }
            return Self.plain(.ok, "session \(id) ended")
        }
        router.patch("/\(prefix)/:room/:session") { request, context in
            let room = context.parameters.get("room") ?? ""
            let id = context.parameters.get("session") ?? ""
            if let refused = await Self.refuse(request, room: room, authorize: authorize) { return refused }
            guard Self.hasMediaType(request.headers[.contentType], Self.trickleContentType) else {
                return Self.plain(
                    .unsupportedMediaType,
                    "a PATCH must be Content-Type: \(Self.trickleContentType), not "
                        + (request.headers[.contentType] ?? "none")
                )
            }
            let body = try await request.body.collect(upTo: DashboardRoutes.maximumRequestBodyBytes)
            do throws(WebRTCSessionError) {
                let outcome = try await sessions.patch(
                    direction: direction,
                    room: room,
                    id: id,
                    ifMatch: request.headers[.ifMatch],
                    fragment: String(buffer: body)
                )
                switch outcome {
                case .trickled:
                    return Response(status: .noContent, headers: Self.corsHeaders())
                case .restarted(let fragment, let etag):
                    var headers = Self.corsHeaders()
                    headers[.contentType] = Self.trickleContentType
                    headers[.eTag] = etag
                    return Response(
                        status: .ok,
                        headers: headers,
                        body: ResponseBody(byteBuffer: ByteBuffer(string: fragment))
                    )
                }
            } catch {
                return Self.response(for: error)
            }
        }
    }

    /// The JSON body of `POST /api/v1/sessions/{id}/max-bitrate`.
    struct BitrateCap: Decodable {
        var bps: Int
    }

    private static func registerBitrateCap(on router: Router<BasicRequestContext>, sessions: WebRTCSessions) {
        router.post("/api/v1/sessions/:session/max-bitrate") { request, context in
            let id = context.parameters.get("session") ?? ""
            // JSON only: a cross-origin page then needs a CORS preflight, which this path does not grant.
            guard Self.hasMediaType(request.headers[.contentType], "application/json") else {
                return Self.plain(.unsupportedMediaType, "the body must be Content-Type: application/json")
            }
            let body = try await request.body.collect(upTo: DashboardRoutes.maximumRequestBodyBytes)
            let cap: BitrateCap
            do {
                cap = try JSONDecoder().decode(BitrateCap.self, from: Data(body.readableBytesView))
            } catch {
                return Self.plain(.badRequest, "the body must be JSON like {\"bps\": 300000}")
            }
            guard cap.bps > 0, cap.bps <= Self.maximumBitrateCap else {
                return Self.plain(.badRequest, "bps must be 1 to \(Self.maximumBitrateCap)")
            }
            guard await sessions.setMaximumBitrate(id: id, bps: cap.bps) else {
                return Self.plain(.notFound, "no session \(id)")
            }
            return Response(status: .noContent, headers: Self.corsHeaders())
        }
        router.delete("/api/v1/sessions/:session/max-bitrate") { _, context in
            let id = context.parameters.get("session") ?? ""
            guard await sessions.setMaximumBitrate(id: id, bps: nil) else {
                return Self.plain(.notFound, "no session \(id)")
            }
            return Response(status: .noContent, headers: Self.corsHeaders())
        }
    }

    /// A 401 response when the authorizer refuses the request, else nil.
    private static func refuse(
        _ request: Request,
        room: String,
        authorize: WebRTCAuthorizer
    ) async -> Response? {
        guard await authorize(Self.bearerToken(request.headers), room) else {
            var response = Self.plain(.unauthorized, "a valid bearer token is required")
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        return nil
    }

    static func response(for error: WebRTCSessionError) -> Response {
        switch error.kind {
        case .badOffer, .badFragment, .badParticipant: Self.plain(.badRequest, error.reason)
        case .noCommonCodec: Self.plain(.notAcceptable, error.reason)
        case .unavailable: Self.plain(.serviceUnavailable, error.reason)
        case .unknownSession: Self.plain(.notFound, error.reason)
        case .preconditionRequired: Self.plain(.preconditionRequired, error.reason)
        case .preconditionFailed: Self.plain(.preconditionFailed, error.reason)
        }
    }

    static func isValidRoom(_ room: String) -> Bool {
        guard !room.isEmpty, room.utf8.count <= Self.maximumRoomLength else { return false }
        return room.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x5F || byte == 0x2E
        }
    }

    /// `application/sdp`, in any case, with or without parameters.
    static func isSDP(_ contentType: String?) -> Bool {
        Self.hasMediaType(contentType, "application/sdp")
    }

    /// Whether `contentType` names `mediaType` (case-insensitive, parameters ignored; RFC 9110 §8.3.1).
    static func hasMediaType(_ contentType: String?, _ mediaType: String) -> Bool {
        guard let contentType else { return false }
        let type = contentType.split(separator: ";", maxSplits: 1).first ?? ""
        return type.trimmingCharacters(in: .whitespaces).lowercased() == mediaType
    }

    /// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive, RFC 9110 §11.1).
    static func bearerToken(_ headers: HTTPFields) -> String? {
        guard let value = headers[.authorization] else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingCharacters(in: .whitespaces)
    }

    static func corsHeaders() -> HTTPFields {
        [
            .accessControlAllowOrigin: "*",
            .accessControlExposeHeaders: "Location, ETag",
        ]
    }

    static func preflight(methods: String) -> Response {
        var headers = Self.corsHeaders()
        headers[.accessControlAllowMethods] = methods
        headers[.accessControlAllowHeaders] = "Content-Type, Authorization, If-Match"
        headers[.accessControlMaxAge] = "86400"
        return Response(status: .noContent, headers: headers)
    }

    static func plain(_ status: HTTPResponse.Status, _ text: String) -> Response {
        var headers = Self.corsHeaders()
        headers[.contentType] = "text/plain; charset=utf-8"
        let body = ResponseBody(byteBuffer: ByteBuffer(string: text + "\n"))
        return Response(status: status, headers: headers, body: body)
    }
}
