/// Why an etcd call failed.
///
/// The cases separate what the caller does next: `unreachable` means "degraded, retry later", `status`
/// means etcd answered and refused (a bug or a bad request), `leaseLost` means the caller's keys are gone
/// and must be re-created under a new lease, `compacted` means a watch cannot resume and the caller must
/// read the state again.
public enum EtcdError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No endpoint answered: every URL tried, and the last connection error.
    case unreachable(urls: [String], reason: String)
    /// etcd answered with a non-2xx status; `message` is etcd's own (`{"error","message","code"}`).
    case status(code: Int, message: String, url: String)
    /// The lease no longer exists (expired or revoked): keys attached to it were deleted.
    case leaseLost(id: Int64)
    /// A watch's resume revision was compacted away; the state must be read again from a range.
    case compacted(compactRevision: Int64)
    /// etcd's answer did not have the expected shape.
    case decoding(what: String, reason: String)
    /// The client was shut down.
    case shutDown

    public var description: String {
        switch self {
        case .unreachable(let urls, let reason):
            "etcd unreachable (tried \(urls.joined(separator: ", "))): \(reason)"
        case .status(let code, let message, let url):
            "etcd at \(url) answered HTTP \(code): \(message)"
        case .leaseLost(let id):
            "etcd lease \(String(id, radix: 16)) lost (expired or revoked)"
        case .compacted(let revision):
            "etcd watch cannot resume: history compacted up to revision \(revision)"
        case .decoding(let what, let reason):
            "cannot decode etcd \(what): \(reason)"
        case .shutDown:
            "etcd client shut down"
        }
    }
}
