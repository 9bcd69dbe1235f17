import BraidSecurity
import Foundation

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
/// `room` is a room name or `*` for every room; `exp` is required. Times are NumericDates (RFC 7519 §2):
/// seconds since 1970, written as integers, read as any JSON number.
public struct AccessClaims: Codable, Sendable, Equatable {
    /// The room the token is for, or `*`.
    public var room: String
    /// What the holder may do there.
    public var role: AccessRole
    /// When the token stops working.
    public var expires: Date
    /// Who the token was minted for (logged, never trusted for anything else).
    public var subject: String?
    /// When it was minted.
    public var issuedAt: Date?

    enum CodingKeys: String, CodingKey {
        case room, role
        case expires = "exp"
        case subject = "sub"
        case issuedAt = "iat"
    }

    public init(room: String, role: AccessRole, expires: Date, subject: String? = nil, issuedAt: Date? = nil) {
        self.room = room
        self.role = role
        self.expires = expires
        self.subject = subject
        self.issuedAt = issuedAt
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.room = try container.decode(String.self, forKey: .room)
        self.role = try container.decode(AccessRole.self, forKey: .role)
        self.expires = try Self.numericDate(container.decode(Double.self, forKey: .expires))
        self.subject = try container.decodeIfPresent(String.self, forKey: .subject)
        self.issuedAt = try container.decodeIfPresent(Double.self, forKey: .issuedAt).map(Self.numericDate)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.room, forKey: .room)
        try container.encode(self.role, forKey: .role)
        try container.encode(Int64(self.expires.timeIntervalSince1970.rounded(.down)), forKey: .expires)
        try container.encodeIfPresent(self.subject, forKey: .subject)
        try container.encodeIfPresent(
            self.issuedAt.map { Int64($0.timeIntervalSince1970.rounded(.down)) }, forKey: .issuedAt)
    }

    /// A NumericDate as a `Date`; NaN and infinities are refused (JSON has neither, but be explicit).
    private static func numericDate(_ seconds: Double) throws -> Date {
        guard seconds.isFinite else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "not a NumericDate"))
        }
        return Date(timeIntervalSince1970: seconds)
    }

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
/// A token is a JWS in compact serialization (RFC 7515 §7.1) over the claims above:
///
/// ```
/// BASE64URL(header) "." BASE64URL(claims) "." BASE64URL(HMAC-SHA256(key, BASE64URL(header) "." BASE64URL(claims)))
/// header: {"alg":"HS256","typ":"JWT"}
/// ```
/// Only HS256 is accepted, whatever the header asks for (RFC 8725 §3.1: no `none`, no algorithm chosen by
/// the token), and a header with `crit` is refused (RFC 7515 §4.1.11: Braid understands no extensions).
/// The HMAC is OpenSSL's; the tag is compared in constant time before the claims are read.
///
/// Thread-safe (immutable). The clock is injected so tests check expiry without waiting.
public final class TokenAuthority: Sendable {
    private let key: [UInt8]
    private let now: @Sendable () -> Date
    /// Longest token accepted, in bytes: a bound on the work an unauthenticated request causes.
    public static let maximumTokenLength = 4096
    /// Room names in tokens follow the URL's rules, plus `*`.
    public static let anyRoom = "*"

    /// - Parameters:
    ///   - key: the shared signing key (its UTF-8 bytes), at least ``NodeConfiguration/minimumTokenKeyLength``
    ///     bytes.
    ///   - now: the clock expiry is checked against.
    public convenience init(key: String, now: @escaping @Sendable () -> Date = Date.init) {
        self.init(keyBytes: Array(key.utf8), now: now)
    }

    /// A key given as raw bytes, as RFC 7515's examples give theirs.
    public init(keyBytes: [UInt8], now: @escaping @Sendable () -> Date = Date.init) {
        self.key = keyBytes
        self.now = now
    }

    /// A signed token for `room` and `role`, valid for `lifetime` seconds from now.
    public func mint(room: String, role: AccessRole, lifetime: TimeInterval, subject: String? = nil) -> String {
        // Whole seconds: NumericDate (RFC 7519 §2) allows fractions, but many verifiers expect integers.
        let issued = Date(timeIntervalSince1970: self.now().timeIntervalSince1970.rounded(.down))
        let claims = AccessClaims(
            room: room, role: role, expires: issued.addingTimeInterval(lifetime), subject: subject, issuedAt: issued)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // Encoding strings, an enum and integers cannot fail.
        let payload = (try? encoder.encode(claims)) ?? Data()
        let signingInput = Base64URL.encode(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8)) + "." + Base64URL.encode(payload)
        return signingInput + "." + Base64URL.encode(HKDF.hmac(key: self.key, data: Array(signingInput.utf8)))
    }

    /// The claims of `token` if its signature, format and expiry are good.
    public func claims(of token: String) throws(AccessDenial) -> AccessClaims {
        let bytes = Array(token.utf8)
        guard bytes.count <= Self.maximumTokenLength else {
            throw AccessDenial(.unauthorized, "the token is longer than \(Self.maximumTokenLength) bytes")
        }
        let parts = bytes.split(separator: UInt8(ascii: "."), maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw Self.malformed("a JWT has three dot-separated parts, this has \(parts.count)")
        }
        guard let headerJSON = Base64URL.decode(parts[0]),
            let header = try? JSONDecoder().decode(Header.self, from: Data(headerJSON))
        else { throw Self.malformed("its header is not base64url-encoded JSON with an alg") }
        guard header.alg == "HS256" else {
            throw Self.malformed("it is signed with \(header.alg.prefix(16)), and only HS256 is accepted")
        }
        guard header.crit == nil else { throw Self.malformed("its header has critical extensions (crit)") }
        guard let signature = Base64URL.decode(parts[2]), signature.count == HKDF.hashLength else {
            throw Self.malformed("its signature is not a base64url-encoded HMAC-SHA256")
        }
        let expected = HKDF.hmac(key: self.key, data: Array(bytes[..<parts[1].endIndex]))
        guard Self.constantTimeEqual(expected, signature) else {
            throw AccessDenial(.unauthorized, "the token's signature does not verify (wrong key or altered)")
        }
        guard let claimsJSON = Base64URL.decode(parts[1]),
            let claims = try? JSONDecoder().decode(AccessClaims.self, from: Data(claimsJSON))
        else { throw Self.malformed("its claims lack room, role or exp, or have the wrong types") }
        guard self.now() < claims.expires else {
            throw AccessDenial(.unauthorized, "the token expired at \(Self.iso8601(claims.expires))")
        }
        return claims
    }

    /// Checks that `token` allows `action` in `room` (nil: a node-wide action such as an operator route).
    public func authorize(token: String?, room: String?, action: AccessAction) throws(AccessDenial) -> AccessClaims {
        guard let token else { throw AccessDenial(.unauthorized, "a bearer token is required") }
        let claims = try self.claims(of: token)
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

    private static func malformed(_ why: String) -> AccessDenial {
        AccessDenial(.unauthorized, "the token is not a valid Braid access token: \(why)")
    }

    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// The JOSE header fields Braid reads (RFC 7515 §4.1).
    private struct Header: Decodable {
        var alg: String
        var crit: [String]?
    }

    static func iso8601(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
