import Hummingbird
import NIOCore

/// The request context of the node's HTTP listeners: Hummingbird's basic context and the client's address
/// (the TCP peer of the connection), which WHIP and WHEP count against `limits.sessions_per_address`.
public struct NodeRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The TCP peer of the request's connection.
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    /// The client's IP address without the port (`127.0.0.1`, `2001:db8::1`), when known.
    public var clientIPAddress: String? { self.remoteAddress?.ipAddress }
}
