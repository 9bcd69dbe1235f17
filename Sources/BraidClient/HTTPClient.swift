import NIOCore
internal import NIOHTTP1
import NIOPosix

/// An `http://host:port/path` address, split once.
///
/// Only plain HTTP is supported: the client targets nodes on the operator's own network and loopback
/// (TLS termination, when needed, sits in front of the node).
public struct HTTPEndpoint: Hashable, Sendable, CustomStringConvertible {
    /// Host name or IP literal (IPv6 without brackets).
    public var host: String
    /// TCP port.
    public var port: Int
    /// Absolute path with query, starting with `/`.
    public var path: String

    /// Creates an endpoint from its parts.
    public init(host: String, port: Int, path: String) {
        self.host = host
        self.port = port
        self.path = path.hasPrefix("/") ? path : "/" + path
    }

    /// Parses `http://host[:port][/path]`.
    /// - Throws: ``BraidClientError/badArgument(_:)`` for another scheme, an empty host or a bad port.
    public init(url: String) throws(BraidClientError) {
        guard url.lowercased().hasPrefix("http://") else {
            throw .badArgument("only http:// URLs are supported, not \(url)")
        }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count)
        var host = Substring(authority)
        var port = 80
        if host.hasPrefix("[") {
            // [v6]:port
            guard let close = host.firstIndex(of: "]") else { throw .badArgument("bad IPv6 literal in \(url)") }
            let after = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if after.hasPrefix(":") {
                guard let value = Int(after.dropFirst()), (1...65_535).contains(value) else {
                    throw .badArgument("bad port in \(url)")
                }
                port = value
            }
        } else if let colon = host.lastIndex(of: ":") {
            guard let value = Int(host[host.index(after: colon)...]), (1...65_535).contains(value) else {
                throw .badArgument("bad port in \(url)")
            }
            port = value
            host = host[..<colon]
        }
        guard !host.isEmpty else { throw .badArgument("no host in \(url)") }
        self.init(host: String(host), port: port, path: path.isEmpty ? "/" : String(path))
    }

    /// Resolves a `Location` header value (absolute URL or absolute path) against this endpoint.
    public func resolving(_ location: String) throws(BraidClientError) -> HTTPEndpoint {
        if location.lowercased().hasPrefix("http://") { return try HTTPEndpoint(url: location) }
        guard location.hasPrefix("/") else { throw .malformedAnswer("relative Location \(location) is not supported") }
        return HTTPEndpoint(host: self.host, port: self.port, path: location)
    }

    /// This endpoint with `name=value` added to its query (`?` or `&`), the value percent-encoded
    /// (RFC 3986 §2.1: everything but unreserved characters).
    public func appendingQuery(name: String, value: String) -> HTTPEndpoint {
        func encode(_ text: String) -> String {
            var encoded = ""
            for byte in text.utf8 {
                switch byte {
                case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x2E, 0x5F, 0x7E:
                    encoded.unicodeScalars.append(Unicode.Scalar(byte))
                default:
                    let hex = String(byte, radix: 16, uppercase: true)
                    encoded += "%" + (hex.count == 1 ? "0" + hex : hex)
                }
            }
            return encoded
        }
        let separator = self.path.contains("?") ? "&" : "?"
        let path = self.path + separator + encode(name) + "=" + encode(value)
        return HTTPEndpoint(host: self.host, port: self.port, path: path)
    }

    public var description: String { "http://\(self.host):\(self.port)\(self.path)" }
}

/// A complete HTTP response: status, headers and a text body.
public struct HTTPResponseSummary: Sendable, Hashable {
    /// Status code.
    public var status: Int
    /// Header fields in order, names as received.
    public var headers: [HeaderField]
    /// The body as UTF-8 text (SDP and `text/plain` reasons are text).
    public var body: String

    /// One header field.
    public struct HeaderField: Sendable, Hashable {
        public var name: String
        public var value: String
    }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return self.headers.first { $0.name.lowercased() == lowered }?.value
    }
}

/// A minimal HTTP/1.1 client for WHIP and WHEP: one request per TCP connection (`Connection: close`),
/// bounded body size, and one deadline over connect, send and receive.
///
/// A WHIP/WHEP exchange is one POST at join and one DELETE at leave, so pooling connections would buy
/// nothing; keeping each request on its own connection keeps the state trivially small.
public struct WHTTPClient: Sendable {
    /// HTTP methods the WHIP/WHEP protocols use.
    public enum Method: String, Sendable {
        case get = "GET"
        case post = "POST"
        case patch = "PATCH"
        case delete = "DELETE"
    }

    /// Largest response body accepted; an SDP answer is a few kilobytes.
    public static let maximumBodyBytes = 256 * 1024

    let group: any EventLoopGroup

    /// Creates a client whose connections run on `group`.
    /// The local address connections are made from (port 0: any); nil lets the system choose.
    let localAddress: SocketAddress?

    public init(group: any EventLoopGroup, localAddress: SocketAddress? = nil) {
        self.group = group
        self.localAddress = localAddress
    }

    /// Sends one request and collects the whole response.
    ///
    /// - Parameters:
    ///   - headers: extra header fields (`Content-Type`, `Authorization`, `If-Match`, ...).
    ///   - body: the request body, sent with `Content-Length`.
    ///   - timeout: deadline for the whole exchange.
    /// - Throws: ``BraidClientError/connectionFailed(_:)`` or ``BraidClientError/timeout(_:)``. Any status
    ///   is returned, not thrown: the caller decides which are errors.
    public func request(
        _ method: Method,
        _ endpoint: HTTPEndpoint,
        headers: [(String, String)] = [],
        body: String? = nil,
        timeout: Duration = .seconds(5)
    ) async throws(BraidClientError) -> HTTPResponseSummary {
        let eventLoop = self.group.next()
        let promise = eventLoop.makePromise(of: HTTPResponseSummary.self)
        let timeAmount = TimeAmount.nanoseconds(
            Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        let deadline = eventLoop.scheduleTask(in: timeAmount) {
            promise.fail(BraidClientError.timeout("\(method.rawValue) \(endpoint) after \(timeout)"))
        }
        var bootstrap = ClientBootstrap(group: eventLoop)
        if let localAddress = self.localAddress { bootstrap = bootstrap.bind(to: localAddress) }
        bootstrap = bootstrap
            .connectTimeout(timeAmount)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise))
                }
            }
        let connect = bootstrap.connect(host: endpoint.host, port: endpoint.port)
        connect.whenFailure { error in promise.fail(BraidClientError.connectionFailed("\(endpoint): \(error)")) }
        connect.whenSuccess { channel in
            var head = HTTPRequestHead(
                version: .http1_1, method: HTTPMethod(rawValue: method.rawValue), uri: endpoint.path)
            head.headers.add(name: "Host", value: "\(endpoint.host):\(endpoint.port)")
            head.headers.add(name: "Connection", value: "close")
            head.headers.add(name: "User-Agent", value: "braid-client")
            for (name, value) in headers { head.headers.add(name: name, value: value) }
            let bodyBuffer = body.map { ByteBuffer(string: $0) }
            head.headers.add(name: "Content-Length", value: "\(bodyBuffer?.readableBytes ?? 0)")
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if let bodyBuffer { channel.write(HTTPClientRequestPart.body(.byteBuffer(bodyBuffer)), promise: nil) }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil)).whenFailure { error in
                promise.fail(BraidClientError.connectionFailed("sending to \(endpoint): \(error)"))
            }
            promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
        do {
            let response = try await promise.futureResult.get()
            deadline.cancel()
            return response
        } catch let error as BraidClientError {
            deadline.cancel()
            throw error
        } catch {
            deadline.cancel()
            throw .connectionFailed("\(error)")
        }
    }
}

/// Collects one response and completes the promise; fails it if the connection ends first.
private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    let promise: EventLoopPromise<HTTPResponseSummary>
    var head: HTTPResponseHead?
    var body = ByteBuffer()

    init(promise: EventLoopPromise<HTTPResponseSummary>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body(var part):
            guard self.body.readableBytes + part.readableBytes <= WHTTPClient.maximumBodyBytes else {
                self.promise.fail(
                    BraidClientError.connectionFailed("response body over \(WHTTPClient.maximumBodyBytes) bytes"))
                context.close(promise: nil)
                return
            }
            self.body.writeBuffer(&part)
        case .end:
            guard let head = self.head else {
                self.promise.fail(BraidClientError.connectionFailed("response without a head"))
                return
            }
            let fields = head.headers.map { HTTPResponseSummary.HeaderField(name: $0.name, value: $0.value) }
            self.promise.succeed(
                HTTPResponseSummary(status: Int(head.status.code), headers: fields, body: String(buffer: self.body)))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.promise.fail(BraidClientError.connectionFailed("connection closed before the response ended"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.promise.fail(BraidClientError.connectionFailed("\(error)"))
        context.close(promise: nil)
    }
}
