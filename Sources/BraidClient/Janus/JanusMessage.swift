import Foundation

/// One JSON message of the Janus API as received over its HTTP transport
/// ([Janus API docs](https://janus.conf.meetecho.com/docs/rest.html); source: `src/janus.c`,
/// `src/transports/janus_http.c`, Janus 1.1.2).
///
/// Every message has a `janus` field naming its kind. Replies to a request repeat its `transaction`;
/// events about a handle carry `sender` (the handle id) and, for plugin events, `plugindata.data` and an
/// optional `jsep`. Errors carry `error.code` and `error.reason` (codes in `src/apierror.h`, e.g. 457
/// "invalid request path", 458 "session not found"); the VideoRoom plugin reports its own errors inside
/// `plugindata.data` as `error_code` / `error` (`plugins/janus_videoroom.c`, e.g. 428 "No such feed").
///
/// Parsing never traps: anything that is not a JSON object with a string `janus` field is
/// ``JanusError/malformed(_:)``.
public struct JanusMessage: @unchecked Sendable {
    /// The `janus` field: `ack`, `success`, `error`, `event`, `keepalive`, `webrtcup`, `media`, `hangup`,
    /// `slowlink`, `detached`, `timeout`, `trickle`, ...
    public var kind: String
    /// `transaction`, if any.
    public var transaction: String?
    /// `sender`: the handle the event is about.
    public var sender: UInt64?
    /// `session_id`.
    public var sessionID: UInt64?
    /// `data.id` of a `success` reply to `create` or `attach`.
    public var dataID: UInt64?
    /// `plugindata.data` of a plugin reply or event (a JSON object).
    public var pluginData: [String: Any]?
    /// `jsep.type` and `jsep.sdp`.
    public var jsep: (type: String, sdp: String)?
    /// `error.code` / `error.reason` of a core error.
    public var error: (code: Int, reason: String)?
    /// The whole object.
    public var raw: [String: Any]

    /// Parses one message object.
    public init(object: Any) throws(JanusError) {
        guard let object = object as? [String: Any] else { throw .malformed("not a JSON object") }
        guard let kind = object["janus"] as? String else { throw .malformed("no \"janus\" field") }
        self.kind = kind
        self.raw = object
        self.transaction = object["transaction"] as? String
        self.sender = Self.integer(object["sender"])
        self.sessionID = Self.integer(object["session_id"])
        self.dataID = (object["data"] as? [String: Any]).flatMap { Self.integer($0["id"]) }
        self.pluginData = (object["plugindata"] as? [String: Any])?["data"] as? [String: Any]
        if let jsep = object["jsep"] as? [String: Any] {
            guard let type = jsep["type"] as? String, let sdp = jsep["sdp"] as? String else {
                throw .malformed("jsep without type and sdp")
            }
            self.jsep = (type, sdp)
        }
        if let error = object["error"] as? [String: Any] {
            self.error = (Self.integer(error["code"]).map { Int($0) } ?? 0, error["reason"] as? String ?? "")
        }
    }

    /// Parses a body holding one message object.
    public init(json text: String) throws(JanusError) {
        try self.init(object: try Self.object(json: text))
    }

    /// Parses a long-poll body: an array of messages (with `maxev`) or one message.
    public static func events(json text: String) throws(JanusError) -> [JanusMessage] {
        let object = try Self.object(json: text)
        if let array = object as? [Any] {
            var messages: [JanusMessage] = []
            for element in array { messages.append(try JanusMessage(object: element)) }
            return messages
        }
        return [try JanusMessage(object: object)]
    }

    static func object(json text: String) throws(JanusError) -> Any {
        guard !text.isEmpty else { throw .malformed("empty body") }
        do {
            return try JSONSerialization.jsonObject(with: Data(text.utf8), options: [])
        } catch {
            throw .malformed("not JSON: \(text.prefix(120))")
        }
    }

    /// A plugin error inside `plugindata.data` (`error_code`, `error`), if any.
    public var pluginError: (code: Int, reason: String)? {
        guard let data = self.pluginData, let code = Self.integer(data["error_code"]) else { return nil }
        return (Int(code), data["error"] as? String ?? "")
    }

    /// The VideoRoom event name: `plugindata.data.videoroom` (`joined`, `attached`, `event`, `created`, ...).
    public var videoroom: String? { self.pluginData?["videoroom"] as? String }

    /// Reads a JSON number (or a numeric string) as an unsigned integer; Janus ids are 53-bit at most.
    static func integer(_ value: Any?) -> UInt64? {
        switch value {
        case let number as NSNumber:
            let double = number.doubleValue
            guard double >= 0, double < 9.007_199_254_740_992e15, double == double.rounded() else { return nil }
            return number.uint64Value
        case let text as String:
            return UInt64(text)
        default:
            return nil
        }
    }

    /// The error this reply stands for, if it is one: a core `error`, or a plugin `error_code`.
    public var failure: JanusError? {
        if self.kind == "error" {
            let error = self.error ?? (0, "no reason given")
            return .api(code: error.code, reason: error.reason)
        }
        if let error = self.pluginError { return .plugin(code: error.code, reason: error.reason) }
        return nil
    }
}

/// What went wrong talking to Janus.
public enum JanusError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Janus answered something that is not a Janus message (not JSON, no `janus` field, a `jsep` without
    /// `sdp`, a reply of an unexpected kind).
    case malformed(String)
    /// A core API error (`{"janus":"error","error":{"code":…,"reason":…}}`, `src/apierror.h`).
    case api(code: Int, reason: String)
    /// A plugin error (`plugindata.data.error_code`, e.g. VideoRoom 428 "No such feed").
    case plugin(code: Int, reason: String)
    /// Janus answered with an HTTP status other than 200.
    case httpStatus(Int, String)

    public var description: String {
        switch self {
        case .malformed(let what): "Janus sent a malformed reply: \(what)"
        case .api(let code, let reason): "Janus error \(code): \(reason)"
        case .plugin(let code, let reason): "Janus VideoRoom error \(code): \(reason)"
        case .httpStatus(let code, let body): "Janus answered HTTP \(code): \(body.prefix(200))"
        }
    }
}

/// Builds the JSON requests of the Janus API (`src/janus.c` `janus_process_incoming_request`; VideoRoom
/// requests in `plugins/janus_videoroom.c`).
public enum JanusRequest {
    /// Serialises `object` (keys sorted, so tests can compare text).
    public static func json(_ object: [String: Any]) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
            return "{}"
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// `{"janus":"create"}`: a new session.
    public static func createSession(transaction: String) -> String {
        json(["janus": "create", "transaction": transaction])
    }

    /// `{"janus":"attach","plugin":"janus.plugin.videoroom"}`: a new handle on the session.
    public static func attach(transaction: String, plugin: String = "janus.plugin.videoroom") -> String {
        json(["janus": "attach", "plugin": plugin, "transaction": transaction])
    }

    /// `{"janus":"message","body":…,"jsep":…}`: a plugin request on a handle.
    public static func message(transaction: String, body: JanusBody, jsep: (type: String, sdp: String)? = nil)
        -> String
    {
        var object: [String: Any] = ["janus": "message", "transaction": transaction, "body": body.fields]
        if let jsep { object["jsep"] = ["type": jsep.type, "sdp": jsep.sdp] }
        return json(object)
    }

    /// `{"janus":"detach"}`, `{"janus":"destroy"}`, `{"janus":"keepalive"}`, `{"janus":"hangup"}`.
    public static func simple(_ kind: String, transaction: String) -> String {
        json(["janus": kind, "transaction": transaction])
    }

    /// VideoRoom `create` (sync): a room for `publishers` publishers, VP8 video and Opus audio.
    public static func createRoom(room: UInt64, publishers: Int, bitrate: Int, secret: String) -> JanusBody {
        JanusBody([
            "request": "create", "room": room, "publishers": publishers, "bitrate": bitrate,
            "videocodec": "vp8", "audiocodec": "opus", "secret": secret, "description": "braid-load",
        ])
    }

    /// VideoRoom `join` as a publisher (async: `joined` with `id`).
    public static func joinPublisher(room: UInt64, display: String) -> JanusBody {
        JanusBody(["request": "join", "ptype": "publisher", "room": room, "display": display])
    }

    /// VideoRoom `publish` (async, with the JSEP offer: `configured` and the JSEP answer).
    public static func publish() -> JanusBody {
        JanusBody(["request": "publish"])
    }

    /// VideoRoom `join` as a subscriber to `feeds` (async: `attached` and a JSEP offer).
    public static func joinSubscriber(room: UInt64, feeds: [UInt64]) -> JanusBody {
        JanusBody(["request": "join", "ptype": "subscriber", "room": room, "streams": feeds.map { ["feed": $0] }])
    }

    /// VideoRoom `start` (async, with the JSEP answer: `started`).
    public static func start() -> JanusBody { JanusBody(["request": "start"]) }

    /// VideoRoom `destroy` (sync) of `room`.
    public static func destroyRoom(room: UInt64, secret: String) -> JanusBody {
        JanusBody(["request": "destroy", "room": room, "secret": secret])
    }
}

/// The `body` of a plugin request: a JSON object (plain strings, numbers, booleans, arrays, objects).
public struct JanusBody: @unchecked Sendable {
    /// The fields; values must be JSON-serialisable.
    public var fields: [String: Any]

    public init(_ fields: [String: Any]) { self.fields = fields }
}
