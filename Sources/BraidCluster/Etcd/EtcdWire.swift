import Foundation

// The JSON shapes of etcd 3.4's gRPC gateway (`/v3/...`), only the fields Braid uses. Keys and values are
// base64 (`Data` under JSONEncoder's default strategy), int64 travels as a string, zero values are omitted
// on the way back (so every response field is optional), and the lease fields are spelled `TTL`/`ID`:
// a lower-case `ttl` is silently ignored by etcd.

/// An int64 that etcd sends as a JSON string (and accepts either way); encoded as a string.
struct WireInt64: Codable, Sendable, Hashable {
    var value: Int64

    init(_ value: Int64) { self.value = value }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let string = try? container.decode(String.self) {
            guard let value = Int64(string) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an int64: \(string)")
            }
            self.value = value
        } else {
            self.value = try container.decode(Int64.self)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(String(self.value))
    }
}

struct WireHeader: Decodable {
    var revision: WireInt64?
}

struct WireKV: Decodable {
    var key: Data
    var value: Data?
    var create_revision: WireInt64?
    var mod_revision: WireInt64?
    var version: WireInt64?
    var lease: WireInt64?
}

/// `{"error","message","code"}`: the body of a failed call (and a line of a failed watch).
struct WireError: Decodable {
    var error: String?
    var message: String?
    var code: Int?
}

struct WireRangeRequest: Encodable {
    var key: Data
    var range_end: Data?
    var limit: WireInt64?
}

struct WireRangeResponse: Decodable {
    var header: WireHeader?
    var kvs: [WireKV]?
    var more: Bool?
}

struct WirePutRequest: Encodable {
    var key: Data
    var value: Data
    var lease: WireInt64?
}

struct WirePutResponse: Decodable {
    var header: WireHeader?
}

struct WireDeleteRangeRequest: Encodable {
    var key: Data
    var range_end: Data?
}

struct WireDeleteRangeResponse: Decodable {
    var header: WireHeader?
    var deleted: WireInt64?
}

struct WireCompare: Encodable {
    var result: String
    var target: String
    var key: Data
    var create_revision: WireInt64?
    var value: Data?
}

struct WireRequestOp: Encodable {
    var request_put: WirePutRequest?
    var request_range: WireRangeRequest?
    var request_delete_range: WireDeleteRangeRequest?
}

struct WireTxnRequest: Encodable {
    var compare: [WireCompare]
    var success: [WireRequestOp]
    var failure: [WireRequestOp]
}

struct WireResponseOp: Decodable {
    var response_range: WireRangeResponse?
    var response_put: WirePutResponse?
}

struct WireTxnResponse: Decodable {
    var header: WireHeader?
    var succeeded: Bool?
    var responses: [WireResponseOp]?
}

struct WireLeaseGrantRequest: Encodable {
    var TTL: WireInt64
}

struct WireLeaseGrantResponse: Decodable {
    var ID: WireInt64?
    var TTL: WireInt64?
    var error: String?
}

struct WireLeaseIDRequest: Encodable {
    var ID: WireInt64
}

struct WireLeaseKeepAliveResponse: Decodable {
    struct Result: Decodable {
        var ID: WireInt64?
        var TTL: WireInt64?
    }
    var result: Result?
}

struct WireEmptyResponse: Decodable {}

struct WireCompactionRequest: Encodable {
    var revision: WireInt64
}

struct WireWatchCreate: Encodable {
    struct Request: Encodable {
        var key: Data
        var range_end: Data?
        var start_revision: WireInt64?
        var prev_kv: Bool
    }
    var create_request: Request
}

/// One NDJSON line of a watch stream: `{"result":…}` or `{"error":…}`.
struct WireWatchLine: Decodable {
    struct Result: Decodable {
        var header: WireHeader?
        var created: Bool?
        var canceled: Bool?
        var compact_revision: WireInt64?
        var cancel_reason: String?
        var events: [WireEvent]?
    }
    var result: Result?
    var error: WireError?
}

struct WireEvent: Decodable {
    var type: String?
    var kv: WireKV
    var prev_kv: WireKV?
}
