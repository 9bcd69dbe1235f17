// Tokens and request bodies are BraidAccess's; the node's users see them through BraidNode.
@_exported import BraidAccess
import Foundation
import HTTPTypes

/// Decides whether a request may publish, play or use operator routes.
///
/// - Parameters:
///   - bearerToken: the token of an `Authorization: Bearer <token>` header (RFC 9725 §4.5, RFC 6750), or
///     nil when the request has none.
///   - room: the room in the URL; nil for node-wide operator routes.
///   - action: what the request asks to do.
/// - Returns: nil to go on, or why not (401 or 403 with a reason).
///
/// Ending or changing an existing WHIP/WHEP session is not decided here: its unguessable resource URL is
/// the capability (``WebRTCRoutes``).
public typealias WebRTCAuthorizer =
    @Sendable (_ bearerToken: String?, _ room: String?, _ action: AccessAction) async -> AccessDenial?

/// Which HTTP listener a router serves.
public enum HTTPListenerRole: String, Sendable {
    /// The public listener: WHIP, WHEP, the demo page, a dashboard without session ids or addresses.
    case `public`
    /// The operator listener (loopback by default): the full dashboard and operator routes, no token needed.
    case `operator`
}

/// The node's access policies.
public enum NodeAccess {
    /// Everything open, operator routes included: the zero-config node, whose listeners are on loopback so
    /// that only this host's users reach them.
    public static let open: WebRTCAuthorizer = { _, _, _ in nil }

    /// Open publishing and playing, operator routes only on the operator listener: a node that serves
    /// without tokens on a reachable address (`insecure_open`).
    public static let openWithoutOperator: WebRTCAuthorizer = { _, _, action in
        guard action == .operate else { return nil }
        return AccessDenial(
            .forbidden,
            "operator routes are served on the operator listener (admin.address, admin.port); "
                + "with auth.token_key set, an admin token also opens them here")
    }

    /// The policy of a node configured with `configuration` and, if tokens are on, `authority`.
    public static func policy(_ configuration: NodeConfiguration, authority: TokenAuthority?) -> WebRTCAuthorizer {
        if let authority { return Self.tokens(authority) }
        return NodeConfiguration.isLoopback(configuration.http.address) ? Self.open : Self.openWithoutOperator
    }

    /// Every action checked against access tokens signed by `authority`.
    public static func tokens(_ authority: TokenAuthority) -> WebRTCAuthorizer {
        { token, room, action in
            do throws(AccessDenial) {
                _ = try authority.authorize(token: token, room: room, action: action)
                return nil
            } catch {
                return error
            }
        }
    }

    /// Why a node with this configuration must not start, or nil.
    ///
    /// A node whose HTTP listener is reachable from other hosts serves WHIP and WHEP to anyone unless
    /// tokens are on; that takes an explicit `insecure_open`. The operator listener has no tokens at all,
    /// so it must stay on loopback unless `insecure_open` says otherwise.
    public static func startRefusal(_ configuration: NodeConfiguration) -> String? {
        if !configuration.auth.isEnabled && !configuration.insecureOpen
            && !NodeConfiguration.isLoopback(configuration.http.address)
        {
            return "http.address \(configuration.http.address) is not loopback and no auth.token_key is set: "
                + "anyone who reaches the node could publish and play. Set auth.token_key (or auth.token_key_file), "
                + "or pass --insecure-open to serve without tokens on purpose."
        }
        if configuration.admin.isEnabled && !configuration.insecureOpen
            && !NodeConfiguration.isLoopback(configuration.admin.address)
        {
            return "admin.address \(configuration.admin.address) is not loopback: the operator listener needs no "
                + "token, so it must stay on loopback (or pass --insecure-open, e.g. behind a private network)."
        }
        return nil
    }

    /// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive, RFC 9110 §11.1).
    public static func bearerToken(_ headers: HTTPFields) -> String? {
        guard let value = headers[.authorization] else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingCharacters(in: .whitespaces)
    }

    /// Reads the token key from the configuration or its file (surrounding whitespace trimmed).
    public static func tokenKey(_ auth: NodeConfiguration.Auth) throws(ConfigurationError) -> String? {
        if let key = auth.tokenKey { return key }
        guard let path = auth.tokenKeyFile else { return nil }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError(key: .authTokenKeyFile, "cannot read \(path): \(error.localizedDescription)")
        }
        let key = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard key.utf8.count >= NodeConfiguration.minimumTokenKeyLength else {
            throw ConfigurationError(
                key: .authTokenKeyFile,
                "the key in \(path) is too short: use at least \(NodeConfiguration.minimumTokenKeyLength) characters")
        }
        return key
    }
}
