import BraidCluster
import BraidFunctions
import BraidSFU
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

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
    /// The largest function request body: a 4 MiB module in base64 and the rest of the request.
    static let maximumFunctionRequestBytes = 6 * 1024 * 1024

    /// Edge functions (operator routes):
    ///
    /// | route | |
    /// | --- | --- |
    /// | `POST /api/v1/rooms/{room}/functions` | starts one: `{"kind", "inputs", "parameters"}` → `201` and its status |
    /// | `GET /api/v1/rooms/{room}/functions` | the room's functions with their CPU, frame rates, drops and delay |
    /// | `GET /api/v1/rooms/{room}/functions/{id}` | one function |
    /// | `DELETE /api/v1/rooms/{room}/functions/{id}` | stops it: inputs released, outputs unpublished |
    ///
    /// With `mesh` (a node of a cluster) they act on the whole mesh: `POST` places the function
    /// (``FunctionPlacement``) and starts it here or forwards the request to the chosen node; `GET`
    /// lists the room's functions from the cluster's records, with each one's status from the node that
    /// runs it; `DELETE` removes the record wherever it runs. A request carrying
    /// `Braid-Function-Local` (what nodes send each other) acts on this node only, as without a mesh.
    static func registerFunctions(
        on router: Router<NodeRequestContext>, sessions: WebRTCSessions, authorize: @escaping WebRTCAuthorizer,
        mesh: MeshService? = nil
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
            guard let mesh else {
                return try await Self.startFunction(parsed, room: room, id: nil, sessions: sessions)
            }
            let forwarded = request.headers[HTTPField.Name(MeshService.functionLocalHeader)!] != nil
            var id = mesh.newFunctionID()
            if forwarded, let given = request.headers[HTTPField.Name(MeshService.functionIDHeader)!] {
                guard MeshService.isValidFunctionID(given) else {
                    return Self.plain(.badRequest, "\(MeshService.functionIDHeader) must be 1 to 64 letters, digits, - or _", cors: false)
                }
                id = given
            }
            if !forwarded, let target = await mesh.placeFunction(parsed, room: room) {
                // Placed on another node: it starts the function and records it; its answer is ours.
                var headers = [
                    ("Content-Type", "application/json"), (MeshService.functionLocalHeader, "1"),
                    (MeshService.functionIDHeader, id),
                ]
                if let authorization = mesh.forwardingAuthorization(incoming: request.headers[.authorization]) {
                    headers.append(("Authorization", authorization))
                }
                do {
                    let answer = try await mesh.forward(
                        .POST, url: target.httpURL + "/api/v1/rooms/\(Self.pathEscaped(room))/functions", body: body,
                        headers: headers)
                    var response = Response(
                        status: HTTPResponse.Status(code: answer.status), body: ResponseBody(byteBuffer: answer.body))
                    if let type = answer.contentType { response.headers[.contentType] = type }
                    if let location = answer.location { response.headers[.location] = location }
                    return response
                } catch {
                    // Unreachable (it may just have died): run it here rather than not at all.
                    mesh.logger.warning(
                        "could not forward a function to the node placement chose; starting it here",
                        metadata: ["node": "\(target.name)", "error": "\(error)"])
                }
            }
            mesh.beginStarting(id)
            defer { mesh.finishStarting(id) }
            let response = try await Self.startFunction(parsed, room: room, id: id, sessions: sessions, mesh: mesh)
            if response.status == .created {
                await mesh.recordFunction(room: room, id: id, request: String(decoding: body.readableBytesView, as: UTF8.self))
            }
            return response
        }
        router.get("/api/v1/rooms/:name/functions") { request, context in
            if let refused = await Self.refuseOperator(request, authorize: authorize) { return refused }
            let room = context.parameters.get("name") ?? ""
            let local = try await sessions.withFunctions { host, _ in host.statuses(room: room) }
            guard let mesh, request.headers[HTTPField.Name(MeshService.functionLocalHeader)!] == nil else {
                return try Self.json(local)
            }
            return try Self.json(await Self.meshStatuses(room: room, local: local, mesh: mesh, request: request))
        }
        router.get("/api/v1/rooms/:name/functions/:id") { request, context in
            if let refused = await Self.refuseOperator(request, authorize: authorize) { return refused }
            let room = context.parameters.get("name") ?? ""
            let id = context.parameters.get("id") ?? ""
            let local = try await sessions.withFunctions({ host, _ in host.statuses(room: room).filter { $0.id == id } })
            if let mesh, request.headers[HTTPField.Name(MeshService.functionLocalHeader)!] == nil {
                let views = await Self.meshStatuses(room: room, local: local, mesh: mesh, request: request, only: id)
                guard let view = views.first else { return Self.plain(.notFound, "no function \(id) in room \(room)", cors: false) }
                return try Self.json(view)
            }
            guard let status = local.first else { return Self.plain(.notFound, "no function \(id) in room \(room)", cors: false) }
            return try Self.json(status)
        }
        router.delete("/api/v1/rooms/:name/functions/:id") { request, context in
            if let refused = await Self.refuseOperator(request, authorize: authorize) { return refused }
            let room = context.parameters.get("name") ?? ""
            let id = context.parameters.get("id") ?? ""
            if let mesh, request.headers[HTTPField.Name(MeshService.functionLocalHeader)!] == nil,
                let record = mesh.functionRecords(room: room).first(where: { $0.id == id })
            {
                do {
                    try await mesh.removeFunctionRecord(room: room, id: id)
                } catch {
                    return Self.plain(.serviceUnavailable, "the cluster store cannot be reached: \(error)", cors: false)
                }
                if record.node != mesh.node.rawValue, let target = await mesh.nodeRecord(record.node) {
                    // Its node would stop it on seeing the record deleted; asking saves that delay.
                    var headers = [(MeshService.functionLocalHeader, "1")]
                    if let authorization = mesh.forwardingAuthorization(incoming: request.headers[.authorization]) {
                        headers.append(("Authorization", authorization))
                    }
                    _ = try? await mesh.forward(
                        .DELETE,
                        url: target.httpURL + "/api/v1/rooms/\(Self.pathEscaped(room))/functions/\(Self.pathEscaped(id))",
                        headers: headers, timeout: .seconds(2))
                } else {
                    _ = try await sessions.withFunctions({ host, now in host.stop(id, room: room, now: now) })
                }
                return Self.plain(.ok, "function \(id) stopped", cors: false)
            }
            guard try await sessions.withFunctions({ host, now in host.stop(id, room: room, now: now) }) else {
                return Self.plain(.notFound, "no function \(id) in room \(room)", cors: false)
            }
            return Self.plain(.ok, "function \(id) stopped", cors: false)
        }
    }

    /// Starts a function on this node: `201` with its status (and, on a mesh, the node's name and id),
    /// or the error's status and reason.
    private static func startFunction(
        _ parsed: FunctionRequest, room: String, id: String?, sessions: WebRTCSessions, mesh: MeshService? = nil
    ) async throws -> Response {
        let started: Result<FunctionStatus, FunctionError> = try await sessions.withFunctions { host, now in
            do throws(FunctionError) {
                return .success(try host.start(parsed, room: room, id: id, now: now))
            } catch {
                return .failure(error)
            }
        }
        switch started {
        case .success(let status):
            var response =
                if let mesh {
                    try Self.json(
                        MeshFunctionView(
                            status: status, id: status.id, room: room, node: mesh.configuration.nodeID,
                            nodeID: NodeIDText.format(mesh.node.rawValue), moves: 0, state: nil),
                        status: .created)
                } else {
                    try Self.json(status, status: .created)
                }
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

    /// The room's functions across the mesh: one entry per record, with the status from the node that
    /// runs it (asked with a short timeout; an entry without one says why), then functions running here
    /// that have no record (started while the store could not be reached).
    private static func meshStatuses(
        room: String, local: [FunctionStatus], mesh: MeshService, request: Request, only: String? = nil
    ) async -> [MeshFunctionView] {
        var views: [MeshFunctionView] = []
        let records = mesh.functionRecords(room: room).filter { only == nil || $0.id == only }
        for record in records {
            let target = await mesh.nodeRecord(record.node)
            var view = MeshFunctionView(
                status: nil, id: record.id, room: room, node: target?.name, nodeID: NodeIDText.format(record.node),
                moves: record.moves, state: nil)
            if record.node == mesh.node.rawValue {
                view.status = local.first { $0.id == record.id }
                if view.status == nil {
                    view.state = mesh.functionFailure(record.id).map { "not started: \($0)" } ?? "starting"
                }
            } else if let target {
                var headers = [(MeshService.functionLocalHeader, "1")]
                if let authorization = mesh.forwardingAuthorization(incoming: request.headers[.authorization]) {
                    headers.append(("Authorization", authorization))
                }
                let answer = try? await mesh.forward(
                    .GET,
                    url: target.httpURL + "/api/v1/rooms/\(Self.pathEscaped(room))/functions/\(Self.pathEscaped(record.id))",
                    headers: headers, timeout: .milliseconds(1500))
                if let answer, answer.status == 200 {
                    view.status = try? JSONDecoder().decode(FunctionStatus.self, from: Data(answer.body.readableBytesView))
                }
                if view.status == nil {
                    view.state = answer.map { "starting on \(target.name) (it answers \($0.status))" } ?? "\(target.name) does not answer"
                }
            } else {
                view.state = "its node is lost: moving"
            }
            views.append(view)
        }
        for status in local where only == nil || status.id == only {
            guard !records.contains(where: { $0.id == status.id }) else { continue }
            views.append(
                MeshFunctionView(
                    status: status, id: status.id, room: room, node: mesh.configuration.nodeID,
                    nodeID: NodeIDText.format(mesh.node.rawValue), moves: 0, state: nil))
        }
        return views
    }

    /// A room name or id as one URL path segment.
    private static func pathEscaped(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? text
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

/// A function as the mesh routes show it: its status as the node running it reports it (the keys of
/// ``FunctionStatus``), plus where it runs. Without a status (its node does not answer, or it is moving)
/// `state` says why and only the record's fields are given.
struct MeshFunctionView: Encodable {
    var status: FunctionStatus?
    var id: String
    var room: String
    /// The name of the node that runs it (nil when that node is not in the registry: lost).
    var node: String?
    var nodeID: String
    /// How many times it moved off a lost node.
    var moves: Int
    var state: String?

    enum CodingKeys: String, CodingKey {
        case id, room, node, state, moves
        case nodeID = "node_id"
    }

    func encode(to encoder: any Encoder) throws {
        // The status's own keys and the placement's in one object.
        try self.status?.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.id, forKey: .id)
        try c.encode(self.room, forKey: .room)
        try c.encodeIfPresent(self.node, forKey: .node)
        try c.encode(self.nodeID, forKey: .nodeID)
        try c.encode(self.moves, forKey: .moves)
        if let state = self.state { try c.encode(state, forKey: .state) }
    }
}

extension String {
    fileprivate var nilIfEmpty: String? { self.isEmpty ? nil : self }
}
