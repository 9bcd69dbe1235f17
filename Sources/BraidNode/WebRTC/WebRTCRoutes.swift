import BraidAccess
import Foundation
import HTTPTypes
import BraidSFU
import Hummingbird
import NIOCore

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
/// | `PATCH /whip/{room}/{resource}`, `/whep/...` | `application/trickle-ice-sdpfrag`: `204` trickle, `200` restart |
/// | `DELETE /whip/{room}/{resource}`, `/whep/...` | `200`, the session ends |
/// | `OPTIONS` on all of them | CORS preflight, `204` |
/// | `POST /api/v1/sessions/{id}/max-bitrate` | operator: JSON `{"bps": 300000}` sets the cap: `204` |
/// | `DELETE /api/v1/sessions/{id}/max-bitrate` | operator: lifts the cap: `204` |
/// | `POST /api/v1/drain` | operator: starts the graceful drain (``NodeDrain``): `202`, then the node exits |
///
/// Access: creating a session asks the authorizer (``WebRTCAuthorizer``: a publish or subscribe token for
/// the room when tokens are on). The `{resource}` of a session's `Location` is 128 random bits only its
/// creator learns; `DELETE` and `PATCH` need it and nothing else, so a session id seen on the operator
/// dashboard (a one-way function of the resource) cannot end or restart a session. Operator routes need
/// the operator listener or an admin token.
///
/// Subscriptions use pre-allocated transceivers: a WHEP subscriber offers as many recvonly audio and video
/// transceivers as tracks it wants to receive; the node fills them with the room's tracks, including tracks
/// published later, without renegotiation. A client that also publishes names its WHIP session (the last
/// path component of the WHIP `Location`) in the WHEP request's `participant` query parameter, so that its
/// own tracks never fill its slots; it must publish first.
///
/// Errors carry a one-line reason in a `text/plain` body: 400 malformed or unanswerable offer or fragment,
/// or a `participant` that is no live WHIP session of the room, 401 no, bad or expired token, 403 a token
/// that does not allow this room or action, 404 unknown
/// session, 406 no common codec, 412 `If-Match` does not match the ETag, 413 body too large, 415 wrong
/// content type, 428 `PATCH` without `If-Match`, 503 node full, media socket down or draining (with
/// `Retry-After`; in a cluster a draining node answers `307` to another node instead). Every response
/// of WHIP and WHEP carries `Access-Control-Allow-Origin: *` and exposes `Location` and `ETag`, so a page
/// from another origin can publish and play; operator routes send no CORS headers, so browsers keep other
/// origins' pages away from them.
public enum WebRTCRoutes {
    /// The authorizer of a node on loopback without tokens: everything is allowed (``NodeAccess/open``).
    public static let allowAll: WebRTCAuthorizer = NodeAccess.open

    /// Longest room name accepted.
    public static let maximumRoomLength = 128

    /// The `Content-Type` of a trickle-ICE `PATCH` body and of an ICE-restart answer (RFC 8840 §9.1).
    public static let trickleContentType = "application/trickle-ice-sdpfrag"

    /// Largest bitrate cap accepted, in bits per second (100 Gbit/s: anything larger is a typo).
    public static let maximumBitrateCap = BitrateCapRequest.maximum

    /// Adds the WHIP, WHEP, `PATCH` and max-bitrate routes to `router`.
    ///
    /// - Parameter redirect: in a cluster, the placement that may send a client that declares its location
    ///   to a better node (RFC 9725 §4.5 allows `307`; the client repeats the same `POST` there).
    ///   - drain: the node's drain: while it runs, new sessions get `503` with `Retry-After` (or, with
    ///     `redirect`, a `307` to another node); it also serves `POST /api/v1/drain` to admin tokens.
    public static func register(
        on router: Router<NodeRequestContext>,
        sessions: WebRTCSessions,
        authorize: @escaping WebRTCAuthorizer = WebRTCRoutes.allowAll,
        redirect: WebRTCRedirector? = nil,
        drain: NodeDrain? = nil,
        mesh: MeshService? = nil
    ) {
        for direction in [WebRTCDirection.publish, .subscribe] {
            Self.registerSignalling(
                on: router, direction: direction, sessions: sessions, authorize: authorize, redirect: redirect,
                drain: drain)
        }
        Self.registerBitrateCap(on: router, sessions: sessions, authorize: authorize)
        Self.registerFunctions(on: router, sessions: sessions, authorize: authorize, mesh: mesh)
        if let drain { Self.registerDrain(on: router, drain: drain, authorize: authorize) }
    }

    /// Adds only the operator routes (the operator listener, where no token is asked for).
    public static func registerOperatorRoutes(
        on router: Router<NodeRequestContext>, sessions: WebRTCSessions, drain: NodeDrain? = nil,
        mesh: MeshService? = nil
    ) {
        Self.registerBitrateCap(on: router, sessions: sessions, authorize: { _, _, _ in nil })
        Self.registerFunctions(on: router, sessions: sessions, authorize: { _, _, _ in nil }, mesh: mesh)
        if let drain { Self.registerDrain(on: router, drain: drain, authorize: { _, _, _ in nil }) }
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
        on router: Router<NodeRequestContext>,
        direction: WebRTCDirection,
        sessions: WebRTCSessions,
        authorize: @escaping WebRTCAuthorizer,
        redirect: WebRTCRedirector?,
        drain: NodeDrain?
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
            let action: AccessAction = direction == .publish ? .publish : .subscribe
            if let refused = await Self.refuse(request, room: room, action: action, authorize: authorize) {
                return refused
            }
            if let drain, drain.isDraining {
                return await Self.drainingResponse(request, prefix: prefix, room: room, drain: drain, redirect: redirect)
            }
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
            // `?track={id}` (repeatable, WHEP): the only tracks the session's slots take.
            var tracks = Set<TrackID>()
            for text in request.uri.queryParameters[values: "track"] {
                guard direction == .subscribe, let id = TrackID(text), tracks.count < 64 else {
                    return Self.plain(
                        .badRequest,
                        direction == .subscribe
                            ? "track must be a track id (node/number, as /api/v1/rooms lists them), at most 64"
                            : "track selects what a WHEP session plays; WHIP takes none")
                }
                tracks.insert(id)
            }
            do throws(WebRTCSessionError) {
                let created = try await sessions.createSession(
                    direction: direction, room: room, offer: offer, participant: participants.first.map(String.init),
                    tracks: tracks, clientAddress: context.clientIPAddress)
                var headers = Self.corsHeaders()
                headers[.contentType] = "application/sdp"
                headers[.location] = "/\(prefix)/\(room)/\(created.resource)"
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
        // DELETE and PATCH: the secret resource in the URL is the capability; no token is asked for.
        router.delete("/\(prefix)/:room/:session") { _, context in
            let room = context.parameters.get("room") ?? ""
            guard let id = Self.sessionID(context.parameters.get("session")),
                await sessions.endSession(direction: direction, room: room, id: id)
            else {
                return Self.plain(.notFound, "no such \(name) resource in room \(room)")
            }
            return Self.plain(.ok, "session ended")
        }
        router.patch("/\(prefix)/:room/:session") { request, context in
            let room = context.parameters.get("room") ?? ""
            guard let id = Self.sessionID(context.parameters.get("session")) else {
                return Self.plain(.notFound, "no such \(name) resource in room \(room)")
            }
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

    private static func registerBitrateCap(
        on router: Router<NodeRequestContext>, sessions: WebRTCSessions, authorize: @escaping WebRTCAuthorizer
    ) {
        router.post("/api/v1/sessions/:session/max-bitrate") { request, context in
            let id = context.parameters.get("session") ?? ""
            if let refused = await Self.refuseOperator(request, authorize: authorize) { return refused }
            // JSON only: a cross-origin page then needs a CORS preflight, which this path does not grant.
            guard Self.hasMediaType(request.headers[.contentType], "application/json") else {
                return Self.plain(.unsupportedMediaType, "the body must be Content-Type: application/json", cors: false)
            }
            let body = try await request.body.collect(upTo: DashboardRoutes.maximumRequestBodyBytes)
            let cap: BitrateCapRequest
            do throws(BitrateCapRequest.Invalid) {
                cap = try BitrateCapRequest.parse(body.readableBytesView)
            } catch {
                return Self.plain(.badRequest, error.reason, cors: false)
            }
            guard await sessions.setMaximumBitrate(id: id, bps: cap.bps) else {
                return Self.plain(.notFound, "no session \(id)", cors: false)
            }
            return Response(status: .noContent)
        }
        router.delete("/api/v1/sessions/:session/max-bitrate") { request, context in
            let id = context.parameters.get("session") ?? ""
            if let refused = await Self.refuseOperator(request, authorize: authorize) { return refused }
            guard await sessions.setMaximumBitrate(id: id, bps: nil) else {
                return Self.plain(.notFound, "no session \(id)", cors: false)
            }
            return Response(status: .noContent)
        }
    }

    /// The 401 or 403 response when the authorizer refuses the request, else nil.
    private static func refuse(
        _ request: Request,
        room: String,
        action: AccessAction,
        authorize: WebRTCAuthorizer
    ) async -> Response? {
        guard let denial = await authorize(NodeAccess.bearerToken(request.headers), room, action) else { return nil }
        return Self.response(for: denial, cors: true)
    }

    /// The refusal of an operator route on this listener, else nil.
    static func refuseOperator(_ request: Request, authorize: WebRTCAuthorizer) async -> Response? {
        guard let denial = await authorize(NodeAccess.bearerToken(request.headers), nil, .operate) else { return nil }
        return Self.response(for: denial, cors: false)
    }

    static func response(for denial: AccessDenial, cors: Bool) -> Response {
        switch denial.status {
        case .unauthorized:
            var response = Self.plain(.unauthorized, denial.reason, cors: cors)
            // RFC 6750 §3: the scheme, and why the token (if any) was refused.
            response.headers[.wwwAuthenticate] = "Bearer error=\"invalid_token\""
            return response
        case .forbidden:
            return Self.plain(.forbidden, denial.reason, cors: cors)
        }
    }

    /// The session id of a resource path component, or nil if it cannot be one.
    static func sessionID(_ resource: String?) -> String? {
        guard let resource, WebRTCSessions.isResourceID(resource) else { return nil }
        return WebRTCSessions.sessionID(ofResource: resource)
    }

    static func response(for error: WebRTCSessionError) -> Response {
        switch error.kind {
        case .badOffer, .badFragment, .badParticipant: Self.plain(.badRequest, error.reason)
        case .noCommonCodec: Self.plain(.notAcceptable, error.reason)
        case .unavailable: Self.plain(.serviceUnavailable, error.reason)
        case .full: Self.retryLater(.serviceUnavailable, error.reason)
        case .tooManyFromAddress: Self.retryLater(.tooManyRequests, error.reason)
        case .unknownSession: Self.plain(.notFound, error.reason)
        case .preconditionRequired: Self.plain(.preconditionRequired, error.reason)
        case .preconditionFailed: Self.plain(.preconditionFailed, error.reason)
        }
    }

    /// The `Retry-After` of a session refused by a limit (RFC 9110 §10.2.3; RFC 6585 §4 for 429), in seconds:
    /// sessions end or time out their handshake within seconds.
    public static let retryAfterSeconds = 5

    /// A refusal by a session limit: `status` (503 or 429), the reason, and `Retry-After`.
    static func retryLater(_ status: HTTPResponse.Status, _ reason: String) -> Response {
        var response = Self.plain(status, reason)
        response.headers[.retryAfter] = "\(Self.retryAfterSeconds)"
        return response
    }

    /// Whether `room` is a valid room name: 1 to ``maximumRoomLength`` of A-Z a-z 0-9 `-` `_` `.`.
    public static func isValidRoom(_ room: String) -> Bool {
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

    static func plain(_ status: HTTPResponse.Status, _ text: String, cors: Bool = true) -> Response {
        var headers = cors ? Self.corsHeaders() : HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        let body = ResponseBody(byteBuffer: ByteBuffer(string: text + "\n"))
        return Response(status: status, headers: headers, body: body)
    }
}
