/// Why a client operation failed.
///
/// HTTP failures keep their status and body so a program can show the server's one-line reason; transport
/// failures say which layer (ICE, DTLS, SRTP) gave up.
public enum BraidClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The TCP connection to the WHIP/WHEP endpoint could not be made or broke before a response.
    case connectionFailed(String)
    /// The request, or the media connection, did not complete in time.
    case timeout(String)
    /// The server answered with a status other than the one expected (`201 Created` for POST, `2xx`
    /// otherwise).
    case httpStatus(code: Int, body: String)
    /// The server's answer is not usable SDP (unparseable, no ICE credentials, no fingerprint, no host
    /// candidate, wrong setup role, ...).
    case malformedAnswer(String)
    /// An argument is out of range (bad URL, zero tracks, ...).
    case badArgument(String)
    /// ICE connectivity checks got no valid answer.
    case iceFailed(String)
    /// The DTLS handshake failed (including a certificate that does not match the answer's fingerprint).
    case dtlsFailed(String)
    /// The peer is closed.
    case closed

    public var description: String {
        switch self {
        case .connectionFailed(let reason): "connection failed: \(reason)"
        case .timeout(let what): "timed out: \(what)"
        case .httpStatus(let code, let body): "HTTP \(code): \(body)"
        case .malformedAnswer(let reason): "malformed answer: \(reason)"
        case .badArgument(let reason): "bad argument: \(reason)"
        case .iceFailed(let reason): "ICE failed: \(reason)"
        case .dtlsFailed(let reason): "DTLS failed: \(reason)"
        case .closed: "closed"
        }
    }
}
