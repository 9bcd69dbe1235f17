import Foundation
import JWTKit

/// What an access token lets its holder do.
///
/// `publish` includes `subscribe`: a conference participant publishes and plays with one token.
/// `admin` is an operator: every room, every operator route, the full dashboard.
public enum AccessRole: String, Codable, Sendable, CaseIterable {
    case subscribe
    case publish
    case admin

    /// Whether a holder of this role may do `action`.
    public func permits(_ action: AccessAction) -> Bool {
        switch (self, action) {
        case (.admin, _): true
        case (.publish, .publish), (.publish, .subscribe), (.subscribe, .subscribe): true
        default: false
        }
    }
}

/// What a request asks to do.
public enum AccessAction: String, Sendable {
    /// WHIP: create a publishing session.
    case publish
    /// WHEP: create a playing session.
    case subscribe
    /// Operator routes and the full dashboard.
    case operate
}

/// The claims of a Braid access token: a JWT (RFC 7519) signed with HS256 (RFC 7518 §3.2).
///
/// ```json
/// {"room": "lobby", "role": "publish", "exp": 1767225600, "sub": "alice", "iat": 1767222000}
/// ```
/// `room` is a room name or `*` for every room; `exp` is required.
public struct AccessClaims: JWTPayload, Equatable {
    /// The room the token is for, or `*`.
    public var room: String
    /// What the holder may do there.
    public var role: AccessRole
    /// When the token stops working.
    public var expiration: ExpirationClaim
    /// Who the token was minted for (logged, never trusted for anything else).
    public var subject: String?
    /// When it was minted.
    public var issuedAt: IssuedAtClaim?

    enum CodingKeys: String, CodingKey {
        case room, role
        case expiration = "exp"
        case subject = "sub"
        case issuedAt = "iat"
    }

    public init(room: String, role: AccessRole, expires: Date, subject: String? = nil, issuedAt: Date? = nil) {
        self.room = room
        self.role = role
        self.expiration = ExpirationClaim(value: expires)
        self.subject = subject
        self.issuedAt = issuedAt.map { IssuedAtClaim(value: $0) }
    }

    /// Called by JWTKit after the signature checks out; expiry is checked by ``TokenAuthority`` against its
    /// injected clock instead, so this accepts.
    public func verify(using algorithm: some JWTAlgorithm) async throws {}

    /// Whether the claims cover `room` (`*` covers all).
    public func covers(room: String) -> Bool { self.room == "*" || self.room == room }
}

/// Why a request was refused, with the HTTP status it gets.
public struct AccessDenial: Error, Sendable, Equatable, CustomStringConvertible {
    /// 401 (no or unusable credentials) or 403 (valid credentials that do not allow this).
    public enum Status: Int, Sendable { case unauthorized = 401, forbidden = 403 }

    public var status: Status
    /// One sentence for the response body and the log.
    public var reason: String

    public init(_ status: Status, _ reason: String) {
        self.status = status
        self.reason = reason
    }

    public var description: String { "\(self.status.rawValue): \(self.reason)" }
}

/// Mints and checks access tokens with one HMAC-SHA256 key.
///
/// Thread-safe. The clock is injected so tests check expiry without waiting.
public final class TokenAuthority: Sendable {
    /// JWTKit's key collection is an actor whose set-up is async; built once, in the background.
    private let keys: Task<JWTKeyCollection, Never>
    private let now: @Sendable () -> Date
    /// Longest token accepted, in bytes: a bound on the work an unauthenticated request causes.
    public static let maximumTokenLength = 4096
    /// Room names in tokens follow the URL's rules, plus `*`.
    public static let anyRoom = "*"

    /// - Parameters:
    ///   - key: the shared signing key, at least ``NodeConfiguration/minimumTokenKeyLength`` bytes.
    ///   - now: the clock expiry is checked against.
    public init(key: String, now: @escaping @Sendable () -> Date = Date.init) {
        let hmac = HMACKey(from: key)
        self.keys = Task { await JWTKeyCollection().add(hmac: hmac, digestAlgorithm: .sha256) }
        self.now = now
    }

    /// A signed token for `room` and `role`, valid for `lifetime` seconds from now.
    public func mint(room: String, role: AccessRole, lifetime: TimeInterval, subject: String? = nil) async throws
        -> String
    {
        // Whole seconds: NumericDate (RFC 7519 §2) allows fractions, but many verifiers expect integers.
        let issued = Date(timeIntervalSince1970: self.now().timeIntervalSince1970.rounded(.down))
        return try await self.keys.value.sign(
            AccessClaims(
                room: room, role: role, expires: issued.addingTimeInterval(lifetime), subject: subject,
                issuedAt: issued))
    }

    /// The claims of `token` if its signature, format and expiry are good.
    public func claims(of token: String) async throws(AccessDenial) -> AccessClaims {
        guard token.utf8.count <= Self.maximumTokenLength else {
            throw AccessDenial(.unauthorized, "the token is longer than \(Self.maximumTokenLength) bytes")
        }
        let claims: AccessClaims
        do {
            claims = try await self.keys.value.verify(token, as: AccessClaims.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            throw AccessDenial(.unauthorized, "the token's signature does not verify (wrong key or altered)")
        } catch {
            throw AccessDenial(.unauthorized, "the token is not a valid Braid access token (\(Self.summary(error)))")
        }
        guard self.now() < claims.expiration.value else {
            throw AccessDenial(.unauthorized, "the token expired at \(Self.iso8601(claims.expiration.value))")
        }
        return claims
    }

    /// Checks that `token` allows `action` in `room` (nil: a node-wide action such as an operator route).
    public func authorize(token: String?, room: String?, action: AccessAction) async throws(AccessDenial)
        -> AccessClaims
    {
        guard let token else { throw AccessDenial(.unauthorized, "a bearer token is required") }
        let claims = try await self.claims(of: token)
        guard claims.role.permits(action) else {
            throw AccessDenial(.forbidden, "a \(claims.role.rawValue) token cannot \(Self.verb(action))")
        }
        if let room, !claims.covers(room: room) {
            throw AccessDenial(.forbidden, "the token is for room \(claims.room), not \(room)")
        }
        if room == nil, action == .operate, claims.room != Self.anyRoom {
            throw AccessDenial(.forbidden, "operator routes need an admin token for every room (room \"*\")")
        }
        return claims
    }

    private static func verb(_ action: AccessAction) -> String {
        switch action {
        case .publish: "publish"
        case .subscribe: "play"
        case .operate: "use operator routes"
        }
    }

    private static func summary(_ error: any Error) -> String {
        if let error = error as? JWTError { return error.errorType.description }
        return "\(type(of: error))"
    }

    static func iso8601(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
