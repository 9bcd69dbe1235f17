import Foundation

/// The JSON body of `POST /api/v1/sessions/{id}/max-bitrate`: `{"bps": 300000}`.
public struct BitrateCapRequest: Decodable, Sendable, Equatable {
    /// The cap in bits per second.
    public var bps: Int

    /// Largest cap accepted (100 Gbit/s: anything larger is a typo).
    public static let maximum = 100_000_000_000

    public init(bps: Int) { self.bps = bps }

    /// Why a body is refused: one sentence for a `400` response.
    public struct Invalid: Error, Sendable, Equatable {
        public var reason: String
    }

    /// Decodes and range-checks a request body.
    public static func parse(_ body: some DataProtocol) throws(Invalid) -> BitrateCapRequest {
        let request: BitrateCapRequest
        do {
            request = try JSONDecoder().decode(BitrateCapRequest.self, from: Data(body))
        } catch {
            throw Invalid(reason: "the body must be JSON like {\"bps\": 300000}")
        }
        guard request.bps > 0, request.bps <= Self.maximum else {
            throw Invalid(reason: "bps must be 1 to \(Self.maximum)")
        }
        return request
    }
}
