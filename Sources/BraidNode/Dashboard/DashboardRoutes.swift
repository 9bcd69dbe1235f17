import BraidAccess
import BraidSFU
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The ops dashboard's HTTP routes: `GET /`, `GET /api/v1/node`, `GET /api/v1/rooms`,
/// `GET /api/v1/rooms/{name}` (404 for a room with no peer), `GET /api/v1/mesh`, `GET /api/v1/placement`,
/// `GET /metrics`, `GET /healthz` (`503 draining` while the node drains, see ``NodeDrain``).
///
/// Two listeners serve them. The public one shows counts only: `/` and `/api/v1/node` leave out session
/// ids, client addresses and rooms, and the room and mesh routes answer 403, unless the request carries an
/// admin token. The operator listener (``HTTPListenerRole/operator``, loopback by default) shows everything
/// and serves the operator routes without a token; it serves no WHIP or WHEP.
///
/// Every route also answers `HEAD`. A known path with another method gets `405 Method Not Allowed` with an
/// `Allow` header (Hummingbird's router alone would answer 404); unknown paths get 404. These routes read
/// no request body: a body up to ``maximumRequestBodyBytes`` is read and ignored, a larger one gets 413.
public enum DashboardRoutes {
    /// The largest request body accepted (and ignored) on these routes.
    public static let maximumRequestBodyBytes = 64 * 1024

    /// The methods each path answers.
    public static let allowedMethods: [String: [HTTPRequest.Method]] = [
        "/": [.get, .head],
        "/api/v1/node": [.get, .head],
        "/api/v1/rooms": [.get, .head],
        "/api/v1/mesh": [.get, .head],
        "/api/v1/placement": [.get, .head],
        "/metrics": [.get, .head],
        "/healthz": [.get, .head],
        "/api/v1/drain": [.post],
    ]

    /// `Content-Type` of the Prometheus text exposition format.
    public static let prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Builds the router over `monitor`: on the public listener with the WHIP and WHEP endpoints
    /// (``WebRTCRoutes``) of its media sessions, on the operator listener with the operator routes.
    ///
    /// - Parameters:
    ///   - whipAuthorizer: decides publishing, playing and (on the public listener) operator access.
    ///   - listener: which listener this router serves.
    public static func makeRouter(
        monitor: NodeMonitor,
        whipAuthorizer: @escaping WebRTCAuthorizer = WebRTCRoutes.allowAll,
        listener: HTTPListenerRole = .public
    ) -> Router<NodeRequestContext> {
        let router = Router(context: NodeRequestContext.self, options: .autoGenerateHeadEndpoints)
        // Added first so it also guards the not-found responder.
        router.add(
            middleware: RequestGuardMiddleware(
                allowedMethods: Self.allowedMethods,
                maximumBodyBytes: Self.maximumRequestBodyBytes
            )
        )
        /// Whether the request may see session details and use operator routes.
        @Sendable func isOperator(_ request: Request) async -> Bool {
            guard listener == .public else { return true }
            return await whipAuthorizer(NodeAccess.bearerToken(request.headers), nil, .operate) == nil
        }
        @Sendable func requireOperator(_ request: Request) async throws {
            guard listener == .public else { return }
            if let denial = await whipAuthorizer(NodeAccess.bearerToken(request.headers), nil, .operate) {
                throw HTTPError(
                    denial.status == .unauthorized ? .unauthorized : .forbidden,
                    message: "this route is for operators: " + denial.reason)
            }
        }
        router.get("/") { request, _ in
            let showsAll = await isOperator(request)
            let status = showsAll ? await monitor.status().status : await monitor.publicStatus()
            var text = status.renderText()
            if showsAll, let mesh = await monitor.mesh?.status() { text += "\n" + mesh.renderText() }
            return Self.response(text, contentType: "text/plain; charset=utf-8")
        }
        router.get("/api/v1/placement") { request, _ in
            guard let mesh = monitor.mesh else {
                throw HTTPError(.notFound, message: "this node is not in a cluster (set cluster.etcd)")
            }
            let query = request.uri.queryParameters
            let latitude = query.get("latitude").flatMap(Double.init)
            let longitude = query.get("longitude").flatMap(Double.init)
            guard let node = await mesh.placement(region: query.get("region"), latitude: latitude, longitude: longitude)
            else { throw HTTPError(.serviceUnavailable, message: "no node is known yet") }
            return try Self.json(node)
        }
        router.get("/api/v1/mesh") { request, _ in
            try await requireOperator(request)
            guard let mesh = monitor.mesh else {
                throw HTTPError(.notFound, message: "this node is not in a cluster (set cluster.etcd)")
            }
            guard let status = await mesh.status() else {
                throw HTTPError(.serviceUnavailable, message: "the mesh is starting")
            }
            return try Self.json(status)
        }
        router.get("/api/v1/node") { request, _ in
            let status = await isOperator(request) ? await monitor.status().status : await monitor.publicStatus()
            return try Self.json(status)
        }
        router.get("/api/v1/rooms") { request, _ in
            try await requireOperator(request)
            return try await Self.json(monitor.media.sessions.rooms())
        }
        router.get("/api/v1/rooms/:name") { request, context in
            try await requireOperator(request)
            let name = context.parameters.get("name") ?? ""
            guard let room = await monitor.media.sessions.room(named: name) else {
                throw HTTPError(.notFound, message: "no room \(name)")
            }
            return try Self.json(room)
        }
        router.get("/metrics") { _, _ in
            let bytes = await monitor.metricsExposition()
            return Response(
                status: .ok,
                headers: [.contentType: Self.prometheusContentType],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes))
            )
        }
        router.get("/healthz") { _, _ in
            // Draining: load balancers and readiness probes stop sending new users here.
            if monitor.media.drain.isDraining {
                var response = Self.response("draining\n", contentType: "text/plain; charset=utf-8")
                response.status = .serviceUnavailable
                return response
            }
            return Self.response("ok\n", contentType: "text/plain; charset=utf-8")
        }
        guard listener == .public else {
            WebRTCRoutes.registerOperatorRoutes(
                on: router, sessions: monitor.media.sessions, drain: monitor.media.drain, mesh: monitor.mesh)
            return router
        }
        var redirect: WebRTCRedirector?
        if let mesh = monitor.mesh {
            redirect = { @Sendable (region: String?, latitude: Double?, longitude: Double?) async -> String? in
                guard let node = await mesh.placement(region: region, latitude: latitude, longitude: longitude),
                    node.id != mesh.node.description
                else { return nil }
                return node.httpURL
            }
        }
        WebRTCRoutes.register(
            on: router, sessions: monitor.media.sessions, authorize: whipAuthorizer, redirect: redirect,
            drain: monitor.media.drain, mesh: monitor.mesh)
        return router
    }

    /// `value` as pretty-printed JSON with sorted keys (stable for people and diffs).
    private static func json(_ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(
            status: .ok,
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    private static func response(_ text: String, contentType: String) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: contentType],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text))
        )
    }
}

/// Answers 405 for a known path with a method it does not serve, and 413 for an oversized body.
struct RequestGuardMiddleware<Context: RequestContext>: RouterMiddleware {
    let allowedMethods: [String: [HTTPRequest.Method]]
    let maximumBodyBytes: Int

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        if let allowed = self.allowedMethods[request.uri.path], !allowed.contains(request.method) {
            throw HTTPError(
                .methodNotAllowed,
                headers: [.allow: allowed.map(\.rawValue).joined(separator: ", ")],
                message: "\(request.method) is not allowed on \(request.uri.path)"
            )
        }
        // Function requests carry a WebAssembly module: their route allows more.
        let path = request.uri.path
        let limit =
            request.method == .post && path.hasPrefix("/api/v1/rooms/") && path.hasSuffix("/functions")
            ? max(self.maximumBodyBytes, WebRTCRoutes.maximumFunctionRequestBytes) : self.maximumBodyBytes
        if let declared = request.headers[.contentLength], let length = Int(declared), length > limit {
            throw HTTPError(.contentTooLarge, message: "the body is at most \(limit) bytes")
        }
        // A chunked body has no declared length: read it, bounded, so an endless one is cut off with 413
        // (NIOTooManyBytesError maps to 413) instead of being buffered.
        var request = request
        _ = try await request.collectBody(upTo: limit)
        return try await next(request, context)
    }
}
