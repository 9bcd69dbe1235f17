import AsyncHTTPClient
import BraidAccess
import BraidCluster
import BraidFunctions
import BraidSFU
import BraidScheduler
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// Edge functions on a mesh: placement, the records in the cluster state, and moves.
///
/// ```
///  POST /functions on any node ── placement (FunctionPlacement: nearest the room's subscribers, else
///        │                        the inputs' origins; spare CPU; never draining or dead)
///        ├─ here:  start (id <node hex>-fn-<random>) ─▶ record functions/<room>/<id> {node: here}
///        └─ there: forward the POST (Braid-Function-Local, Braid-Function-Id) ─▶ it starts and records
///
///  every node, every 250 ms: records naming it that it does not run ─▶ start them
///                            functions it runs whose record is gone or names another ─▶ stop them
///  the leader, too:          records naming a node that is no longer in the registry (lease expired)
///                            ─▶ place again without it, rewrite the record {node: new, moves + 1}
/// ```
///
/// The record, not a forwarded request, is what makes a node run a function after a move: the leader
/// only writes, and the new node starts it as soon as it sees the record, so a move survives the leader
/// failing half-way (the next leader sees the same records) and needs no node-to-node call.
extension MeshService {
    /// On a forwarded request: act on this node only (no placement, no forwarding again).
    static let functionLocalHeader = "Braid-Function-Local"
    /// On a forwarded `POST`: the id the placing node chose.
    static let functionIDHeader = "Braid-Function-Id"
    /// How often records and running functions are compared.
    static let functionInterval = Duration.milliseconds(250)

    /// An id unique across the mesh: this node and 48 random bits (numbers restart with the process).
    func newFunctionID() -> String {
        NodeIDText.format(self.node.rawValue) + "-fn-" + String(UInt64.random(in: 0..<(1 << 48)), radix: 16)
    }

    /// Whether `id` is usable as a function id from another node (it goes into URLs and keys).
    static func isValidFunctionID(_ id: String) -> Bool {
        (1...64).contains(id.utf8.count) && id.utf8.allSatisfy { $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0.isASCIIAlphanumeric }
    }

    /// The node a new function of `room` should run on, or nil for this one (also when nothing better is
    /// known or the mesh is not running yet).
    func placeFunction(_ request: FunctionRequest, room: String) async -> NodeRecord? {
        guard let forwarder = self.state.withLockedValue({ $0.forwarder }) else { return nil }
        let me = self.node.rawValue
        let chosen = try? await forwarder.eventLoop.submit { () -> NodeRecord? in
            let target = forwarder.value.functionPlacement(inputs: request.inputs, room: room, requester: me, excluded: [])
            guard let target, target != me else { return nil }
            return forwarder.value.nodes[NodeID(rawValue: target)]
        }.get()
        return chosen ?? nil
    }

    /// Marks `id` as being started by a request (reconciliation leaves it alone until ``finishStarting(_:)``).
    func beginStarting(_ id: String) {
        _ = self.state.withLockedValue { $0.startingFunctions.insert(id) }
    }

    func finishStarting(_ id: String) {
        _ = self.state.withLockedValue { $0.startingFunctions.remove(id) }
    }

    /// Records a function this node started. The model is updated at once, so reconciliation does not
    /// stop the function before the store's event arrives. A store that cannot be reached leaves the
    /// function running unrecorded (logged): it then is not moved if this node is lost.
    func recordFunction(room: String, id: String, request: String) async {
        let record = FunctionRecord(room: room, id: id, node: self.node.rawValue, request: request)
        self.state.withLockedValue { $0.functions[record.key] = record }
        do {
            try await self.store.placeFunction(record)
        } catch {
            self.logger.warning(
                "function started but not recorded in the cluster: it will not move if this node is lost",
                metadata: ["function": "\(id)", "error": "\(error)"])
        }
    }

    /// The records of `room`'s functions, by id.
    func functionRecords(room: String) -> [FunctionRecord] {
        self.state.withLockedValue { state in state.functions.values.filter { $0.room == room }.sorted { $0.id < $1.id } }
    }

    /// Deletes a function's record (the node running it stops it when it sees the deletion).
    func removeFunctionRecord(room: String, id: String) async throws {
        self.state.withLockedValue { _ = $0.functions.removeValue(forKey: FunctionKey(room: room, id: id)) }
        try await self.store.removeFunction(room: room, id: id)
    }

    /// Why a function assigned to this node is not running, if it failed to start.
    func functionFailure(_ id: String) -> String? {
        self.state.withLockedValue { $0.functionFailures[id] }
    }

    /// A node of the registry, by id.
    func nodeRecord(_ id: UInt64) async -> NodeRecord? {
        guard let forwarder = self.state.withLockedValue({ $0.forwarder }) else { return nil }
        let record = try? await forwarder.eventLoop.submit { forwarder.value.nodes[NodeID(rawValue: id)] }.get()
        return record ?? nil
    }

    /// The credential a forwarded operator request carries: the operator's own bearer token if it sent
    /// one, else a one-minute admin token signed with this node's `auth.token_key` (the nodes of a mesh
    /// share it), else none (open nodes).
    func forwardingAuthorization(incoming: String?) -> String? {
        if let incoming { return incoming }
        guard let key = try? NodeAccess.tokenKey(self.configuration.auth) else { return nil }
        return "Bearer " + TokenAuthority(key: key).mint(room: TokenAuthority.anyRoom, role: .admin, lifetime: 60)
    }

    /// Sends an operator request to another node's HTTP API.
    func forward(
        _ method: HTTPMethod, url: String, body: ByteBuffer? = nil, headers: [(String, String)], timeout: Duration = .seconds(5)
    ) async throws -> (status: Int, contentType: String?, location: String?, body: ByteBuffer) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(body) }
        let response = try await HTTPClient.shared.execute(request, timeout: .init(timeout))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), response.headers.first(name: "Content-Type"),
                response.headers.first(name: "Location"), bytes)
    }

    // MARK: - Model and reconciliation

    /// Keeps the functions' model in step with the store's events.
    func observeFunctions(_ event: ClusterEvent) {
        switch event {
        case .functionPlaced(let record):
            self.state.withLockedValue { $0.functions[record.key] = record }
        case .functionRemoved(let room, let id, _):
            self.state.withLockedValue { _ = $0.functions.removeValue(forKey: FunctionKey(room: room, id: id)) }
        default:
            break
        }
    }

    /// Every ``functionInterval``: start what is assigned here and not running, stop what runs here and
    /// is no longer assigned here; on the leader, move the functions of lost nodes.
    func functionLoop(forwarder: NIOLoopBound<MeshForwarder>, loop: any EventLoop) async {
        var lastAttempt: [String: ContinuousClock.Instant] = [:]
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.functionInterval)
            await self.reconcileFunctions(lastAttempt: &lastAttempt)
            if await self.store.isLeader, await self.store.health.isHealthy {
                await self.moveFunctionsOfLostNodes(forwarder: forwarder, loop: loop)
            }
        }
    }

    private func reconcileFunctions(lastAttempt: inout [String: ContinuousClock.Instant]) async {
        let me = self.node.rawValue
        let (records, starting) = self.state.withLockedValue { ($0.functions, $0.startingFunctions) }
        guard let running = try? await self.media.sessions.withFunctions({ host, _ in host.statuses() }) else { return }
        let runningIDs = Set(running.map(\.id))
        for record in records.values.sorted(by: { $0.key < $1.key })
        where record.node == me && !runningIDs.contains(record.id) && !starting.contains(record.id) {
            // A failed start is tried again every 2 s (its inputs may appear), and logged once.
            if let last = lastAttempt[record.id], ContinuousClock.now - last < .seconds(2) { continue }
            lastAttempt[record.id] = .now
            let result: Result<FunctionStatus, FunctionError>
            do {
                let request = try JSONDecoder().decode(FunctionRequest.self, from: Data(record.request.utf8))
                result = try await self.media.sessions.withFunctions { host, now in
                    do throws(FunctionError) {
                        return .success(try host.start(request, room: record.room, id: record.id, now: now))
                    } catch {
                        return .failure(error)
                    }
                }
            } catch {
                result = .failure(FunctionError(.badRequest, "the recorded request does not decode: \(error)"))
            }
            switch result {
            case .success:
                self.state.withLockedValue { _ = $0.functionFailures.removeValue(forKey: record.id) }
                lastAttempt[record.id] = nil
                self.logger.info(
                    "started function assigned to this node",
                    metadata: ["function": "\(record.id)", "room": "\(record.room)", "moves": "\(record.moves)"])
            case .failure(let error):
                let first = self.state.withLockedValue { $0.functionFailures.updateValue(error.reason, forKey: record.id) == nil }
                if first {
                    self.logger.warning(
                        "function assigned to this node cannot start (retrying)",
                        metadata: ["function": "\(record.id)", "room": "\(record.room)", "reason": "\(error.reason)"])
                }
            }
        }
        // Functions with a mesh id that are no longer assigned here: deleted, or moved away while this
        // node was cut off. Ids of the single-node form (`fn-N`) were never recorded and are left alone.
        for status in running where status.id.contains("-fn-") && !starting.contains(status.id) {
            let record = records[FunctionKey(room: status.room, id: status.id)]
            guard record?.node != me else { continue }
            _ = try? await self.media.sessions.withFunctions { host, now in host.stop(status.id, room: status.room, now: now) }
            self.logger.info(
                record == nil ? "stopped function: its record was deleted" : "stopped function: it was moved to another node",
                metadata: ["function": "\(status.id)", "room": "\(status.room)"])
        }
        self.state.withLockedValue { state in
            state.functionFailures = state.functionFailures.filter { id, _ in
                records.values.contains { $0.id == id && $0.node == me }
            }
        }
        lastAttempt = lastAttempt.filter { id, _ in records.values.contains { $0.id == id } }
    }

    /// The leader's part: every function whose node has left the registry is placed again (the lost node
    /// cannot be chosen: it is gone from the scheduler) and its record rewritten; the new node starts it.
    private func moveFunctionsOfLostNodes(forwarder: NIOLoopBound<MeshForwarder>, loop: any EventLoop) async {
        let records = self.state.withLockedValue { Array($0.functions.values) }
        guard !records.isEmpty else { return }
        guard let alive = try? await loop.submit({ Set(forwarder.value.nodes.keys.map(\.rawValue)) }).get() else { return }
        for record in records.sorted(by: { $0.key < $1.key }) where !alive.contains(record.node) && record.node != self.node.rawValue {
            guard let request = try? JSONDecoder().decode(FunctionRequest.self, from: Data(record.request.utf8)) else {
                continue
            }
            let lost = record.node
            guard
                let target = try? await loop.submit({
                    forwarder.value.functionPlacement(inputs: request.inputs, room: record.room, requester: nil, excluded: [lost])
                }).get()
            else {
                if self.state.withLockedValue({ $0.unplaceableFunctions.insert(record.id).inserted }) {
                    self.logger.warning(
                        "function of a lost node: no live, non-draining node to move it to (retrying)",
                        metadata: ["function": "\(record.id)", "room": "\(record.room)"])
                }
                continue
            }
            self.state.withLockedValue { _ = $0.unplaceableFunctions.remove(record.id) }
            var moved = record
            moved.node = target
            moved.moves += 1
            // Written only if the stored record is still the one read: a DELETE or another move meanwhile
            // wins (the watch brings the model up to date).
            do {
                guard try await self.store.replaceFunction(record, with: moved) else { continue }
                self.state.withLockedValue { $0.functions[moved.key] = moved }
                self.logger.notice(
                    "moved function off a lost node",
                    metadata: [
                        "function": "\(record.id)", "room": "\(record.room)", "from": "\(NodeIDText.format(lost))",
                        "to": "\(NodeIDText.format(target))",
                    ])
            } catch {
                self.logger.warning("could not move function", metadata: ["function": "\(record.id)", "error": "\(error)"])
            }
        }
    }
}

extension MeshForwarder {
    /// Where a function of `room` taking `inputs` should run (see ``FunctionPlacement``): consumers are
    /// the room's subscribers per node, from the registry (each node reports them with its load); inputs
    /// are the named tracks' origins, or for `all-audio`/`all-video` the origins of the room's tracks.
    func functionPlacement(inputs: FunctionInputs, room: String, requester: UInt64?, excluded: Set<UInt64>) -> UInt64? {
        var consumers: [UInt64: Int] = [:]
        for (id, record) in self.nodes {
            if let count = record.load.subscribers?[room], count > 0 { consumers[id.rawValue] = count }
        }
        var origins: [UInt64: Int] = [:]
        switch inputs {
        case .tracks(let ids):
            for id in ids { origins[id.origin.rawValue, default: 0] += 1 }
        case .allAudio, .allVideo:
            for producer in self.router.tracks(inRoom: room) { origins[producer.id.origin.rawValue, default: 0] += 1 }
        }
        return self.scheduler.placement(
            function: FunctionPlacement(consumers: consumers, inputs: origins, requester: requester, excluded: excluded))
    }
}

extension UInt8 {
    fileprivate var isASCIIAlphanumeric: Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self)
            || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self)
    }
}
