import HTTPTypes
import Hummingbird
import NIOCore

extension WebRTCRoutes {
    /// `POST /api/v1/drain` (an operator route): starts the node's drain (``NodeDrain``) and answers `202`;
    /// the node then refuses new sessions, says goodbye to every peer, waits up to its drain timeout for
    /// the sessions to leave and exits, as on SIGTERM. A second request while draining answers `202` too.
    static func registerDrain(
        on router: Router<NodeRequestContext>, drain: NodeDrain, authorize: @escaping WebRTCAuthorizer
    ) {
        router.post("/api/v1/drain") { request, _ in
            if let refused = await Self.refuseOperator(request, authorize: authorize) { return refused }
            let started = drain.start(.request)
            let seconds = drain.timeout.components.seconds
            return Self.plain(
                .accepted,
                started
                    ? "draining: new sessions are refused, peers are told to leave; the node exits within \(seconds) s"
                    : "already draining",
                cors: false)
        }
    }

    /// The answer to a new WHIP or WHEP session while the node drains: `307` to another node of the
    /// cluster when placement names one (the client repeats its `POST` there, RFC 9725 §4.5), else `503`
    /// with `Retry-After`.
    static func drainingResponse(
        _ request: Request, prefix: String, room: String, drain: NodeDrain, redirect: WebRTCRedirector?
    ) async -> Response {
        if let redirect {
            let query = request.uri.queryParameters
            let target = await redirect(
                query.get("region"), query.get("latitude").flatMap(Double.init),
                query.get("longitude").flatMap(Double.init))
            if let target {
                var headers = Self.corsHeaders()
                let query = request.uri.query.map { "?" + $0 } ?? ""
                headers[.location] = "\(target)/\(prefix)/\(room)\(query)"
                return Response(status: .temporaryRedirect, headers: headers)
            }
        }
        var response = Self.plain(.serviceUnavailable, "the node is draining and takes no new sessions")
        response.headers[.retryAfter] = "\(drain.retryAfterSeconds)"
        return response
    }
}
