import BraidFunctions
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

extension WebRTCSessions {
    /// Runs `body` with the node's function host, on the event loop of the first shard (where the mesh
    /// relays run too: every track of the node is published or mirrored there).
    func withFunctions<Value: Sendable>(
        _ body: @escaping @Sendable (FunctionHost, NIODeadline) throws -> Value
    ) async throws -> Value {
        guard let shard = self.primaryShard() else {
            throw HTTPError(.serviceUnavailable, message: "the media socket is not running")
        }
        let store = shard.store
        return try await shard.eventLoop.submit { try body(store.value.functions, .now()) }.get()
    }
}

extension WebRTCRoutes {
    /// Edge functions (operator routes):
    ///
    /// | route | |
    /// | --- | --- |
    /// | `POST /api/v1/rooms/{room}/functions` | starts one: `{"kind", "inputs", "parameters"}` → `201` and its status |
    /// | `GET /api/v1/rooms/{room}/functions` | the room's functions with their CPU, frame rates, drops and delay |
    /// | `GET /api/v1/rooms/{room}/functions/{id}` | one function |
    /// | `DELETE /api/v1/rooms/{room}/functions/{id}` | stops it: inputs released, outputs unpublished |
    /// The largest function request body: a 4 MiB module in base64 and the rest of the request.
    static let maximumFunctionRequestBytes = 6 * 1024 * 1024

    static func registerFunctions(
        on router: Router<NodeRequestContext>, sessions: WebRTCSessions, authorize: @escaping WebRTCAuthorizer
    ) {
        router.post("/api/v1/rooms/:name/functions") { request, context in
            if let refused = await Self.refuseOperator(request, authorize: authorize) { return refused }
            let room = context.parameters.get("name") ?? ""
            guard Self.hasMediaType(request.headers[.contentType], "application/json") else {
                return Self.plain(.unsupportedMediaType, "the body must be Content-Type: application/json", cors: false)
            }
            // A WebAssembly module comes in the body (base64): room for the sandbox's 4 MiB module limit.
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: Self.maximumFunctionRequestBytes)
            } catch {
                return Self.plain(
                    .contentTooLarge,
                    "a function request is at most \(Self.maximumFunctionRequestBytes) bytes (a module of at most 4 MiB, in base64)",
                    cors: false)
            }
            let parsed: FunctionRequest
            do {
                parsed = try JSONDecoder().decode(FunctionRequest.self, from: Data(body.readableBytesView))
            } catch {
                return Self.plain(
                    .badRequest,
                    "the body must be {\"kind\": \"audio-mix\" (or transcode, composite, wasm-audio, wasm-video), "
                        + "\"inputs\": \"all-audio\", \"all-video\" or [track ids], \"parameters\": {…}} "
                        + "(NodeAPI.md, Edge functions): \(Self.describe(error))", cors: false)
            }
            let started: Result<FunctionStatus, FunctionError> = try await sessions.withFunctions { host, now in
                do throws(FunctionError) {
                    return .success(try host.start(parsed, room: room, now: now))
                } catch {
                    return .failure(error)
                }
            }
            switch started {
            case .success(let status):
                var response = try Self.json(status, status: .created)
                response.headers[.location] = "/api/v1/rooms/\(room)/functions/\(status.id)"
                return response
            case .failure(let error):
                let status: HTTPResponse.Status =
                    switch error.code {
                    case .badRequest: .badRequest
                    case .unknownTrack: .notFound
                    case .full: .serviceUnavailable
                    }
                return Self.plain(status, error.reason, cors: false)
            }
        }
        router.get("/api/v1/rooms/:name/functions") { request, context in
            if let refused = await Self.refuseOperator(request, authorize: authorize) { return refused }
            let room = context.parameters.get("name") ?? ""
            return try Self.json(try await sessions.withFunctions { host, _ in host.statuses(room: room) })
        }
        router.get("/api/v1/rooms/:name/functions/:id") { request, context in
            if let refused = await Self.refuseOperator(request, authorize: authorize) { return refused }
            let room = context.parameters.get("name") ?? ""
            let id = context.parameters.get("id") ?? ""
            guard let status = try await sessions.withFunctions({ host, _ in host.statuses(room: room).first { $0.id == id } })
            else { return Self.plain(.notFound, "no function \(id) in room \(room)", cors: false) }
            return try Self.json(status)
        }
        router.delete("/api/v1/rooms/:name/functions/:id") { request, context in
            if let refused = await Self.refuseOperator(request, authorize: authorize) { return refused }
            let room = context.parameters.get("name") ?? ""
            let id = context.parameters.get("id") ?? ""
            guard try await sessions.withFunctions({ host, now in host.stop(id, room: room, now: now) }) else {
                return Self.plain(.notFound, "no function \(id) in room \(room)", cors: false)
            }
            return Self.plain(.ok, "function \(id) stopped", cors: false)
        }
    }

    private static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    /// A decoding error in a sentence, without Swift type names.
    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "\"\(key.stringValue)\" is missing"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
            DecodingError.dataCorrupted(let context):
            (context.codingPath.map(\.stringValue).joined(separator: ".").nilIfEmpty.map { "\($0): " } ?? "")
                + context.debugDescription
        default: "not JSON"
        }
    }
}

extension String {
    fileprivate var nilIfEmpty: String? { self.isEmpty ? nil : self }
}
