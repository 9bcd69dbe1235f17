import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Decides whether a WHIP request may create or end a session.
///
/// - Parameters:
///   - bearerToken: the token of an `Authorization: Bearer <token>` header (RFC 9725 §4.5, RFC 6750), or
///     nil when the request has none.
///   - room: the room in the URL.
/// - Returns: true to go on; false answers `401 Unauthorized`.
public typealias WHIPAuthorizer = @Sendable (_ bearerToken: String?, _ room: String) async -> Bool

/// The WHIP ingest endpoint (RFC 9725): `POST /whip/{room}` creates a session, `DELETE /whip/{room}/{id}`
/// ends it, `OPTIONS` on both answers CORS preflights.
///
/// - `POST` takes an SDP offer (`Content-Type: application/sdp`, at most
///   ``DashboardRoutes/maximumRequestBodyBytes``) and answers `201 Created` with the SDP answer, `Location`
///   and `ETag` (RFC 9725 §4.2). Errors carry a one-line reason in a `text/plain` body: 400 malformed or
///   unanswerable offer, 401 refused by the authorizer, 406 no common codec, 413 body too large, 415 wrong
///   content type, 503 node full or media socket down.
/// - `DELETE` answers 200 and frees the session, 404 for an unknown one (RFC 9725 §4.2).
/// - `PATCH` (trickle ICE and ICE restarts, RFC 9725 §4.3) is not supported yet: 405.
/// - Every response carries `Access-Control-Allow-Origin: *` and exposes `Location` and `ETag`, so a
///   browser page from another origin can publish.
public enum WHIPRoutes {
    /// The authorizer of a node on loopback: every request may publish. A node reachable by others
    /// should pass its own (``NodeServer/init(configuration:logger:whipAuthorizer:)``).
    public static let allowAll: WHIPAuthorizer = { _, _ in true }

    /// Longest room name accepted.
    public static let maximumRoomLength = 128

    /// Adds the WHIP routes to `router`.
    public static func register(
        on router: Router<BasicRequestContext>,
        sessions: WebRTCSessions,
        authorize: @escaping WHIPAuthorizer = WHIPRoutes.allowAll
    ) {
        router.on("/whip/:room", method: .options) { _, _ in Self.preflight(methods: "POST, OPTIONS") }
        router.on("/whip/:room/:session", method: .options) { _, _ in
            Self.preflight(methods: "DELETE, PATCH, OPTIONS")
        }
        router.post("/whip/:room") { request, context in
            let room = context.parameters.get("room") ?? ""
            guard Self.isValidRoom(room) else {
                return Self.plain(
                    .badRequest,
                    "the room name must be 1 to \(Self.maximumRoomLength) letters, digits, '-', '_' or '.'"
                )
            }
            guard await authorize(Self.bearerToken(request.headers), room) else {
                var response = Self.plain(.unauthorized, "a valid bearer token is required to publish")
                response.headers[.wwwAuthenticate] = "Bearer"
                return response
            }
            guard Self.isSDP(request.headers[.contentType]) else {
                return Self.plain(
                    .unsupportedMediaType,
                    "a WHIP offer must be Content-Type: application/sdp, not \(request.headers[.contentType] ?? "none")"
                )
            }
            let body = try await request.body.collect(upTo: DashboardRoutes.maximumRequestBodyBytes)
            guard body.readableBytes > 0 else { return Self.plain(.badRequest, "the request has no SDP offer") }
            let offer = String(buffer: body)
            do throws(WHIPError) {
                let created = try await sessions.createIngestSession(room: room, offer: offer)
                var headers = Self.corsHeaders()
                headers[.contentType] = "application/sdp"
                headers[.location] = "/whip/\(room)/\(created.id)"
                headers[.eTag] = created.etag
                return Response(
                    status: .created,
                    headers: headers,
                    body: ResponseBody(byteBuffer: ByteBuffer(string: created.answer))
                )
            } catch {
                switch error.kind {
                case .badOffer: return Self.plain(.badRequest, error.reason)
                case .noCommonCodec: return Self.plain(.notAcceptable, error.reason)
                case .unavailable: return Self.plain(.serviceUnavailable, error.reason)
                }
            }
        }
        router.delete("/whip/:room/:session") { request, context in
            let room = context.parameters.get("room") ?? ""
            let id = context.parameters.get("session") ?? ""
            guard await authorize(Self.bearerToken(request.headers), room) else {
                var response = Self.plain(.unauthorized, "a valid bearer token is required")
                response.headers[.wwwAuthenticate] = "Bearer"
                return response
            }
            guard await sessions.endSession(room: room, id: id) else {
                return Self.plain(.notFound, "no session \(id) in room \(room)")
            }
            return Self.plain(.ok, "session \(id) ended")
        }
        router.patch("/whip/:room/:session") { _, _ in
            var response = Self.plain(.methodNotAllowed, "trickle ICE and ICE restarts are not supported")
            response.headers[.allow] = "DELETE, OPTIONS"
            return response
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
        guard let contentType else { return false }
        let type = contentType.split(separator: ";", maxSplits: 1).first ?? ""
        return type.trimmingCharacters(in: .whitespaces).lowercased() == "application/sdp"
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
