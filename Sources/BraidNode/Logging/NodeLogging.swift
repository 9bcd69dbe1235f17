import Foundation
import Logging
import NIOConcurrencyHelpers

/// Writes each log record as one JSON object on one line (JSON Lines), for log collectors.
///
/// Keys: `timestamp` (RFC 3339, UTC, milliseconds), `level`, `label`, `message`, `source`, and one key per
/// metadata entry under `metadata` (strings; nested arrays and dictionaries as JSON arrays and objects).
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    private let label: String
    private let write: @Sendable (String) -> Void

    /// - Parameters:
    ///   - label: the logger's label.
    ///   - write: receives each line, newline included; must be thread-safe.
    public init(label: String, write: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.write = write
    }

    /// A handler that writes to standard error.
    public static func standardError(label: String) -> JSONLogHandler {
        JSONLogHandler(label: label) { line in
            StandardErrorWriter.shared.write(line)
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = self.metadata
        if let provided = self.metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }

        var object: [String: Any] = [
            "timestamp": Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(Date()),
            "level": event.level.rawValue,
            "label": self.label,
            "message": event.message.description,
            "source": event.source,
        ]
        if !merged.isEmpty {
            object["metadata"] = merged.mapValues(Self.jsonValue)
        }
        // Only strings, arrays and dictionaries of them: serialisation cannot fail.
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        self.write(String(decoding: data, as: UTF8.self) + "\n")
    }

    private static func jsonValue(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        case .array(let array): array.map(Self.jsonValue)
        case .dictionary(let dictionary): dictionary.mapValues(Self.jsonValue)
        }
    }
}

/// Serialises writes to standard error so concurrent log lines never interleave.
final class StandardErrorWriter: Sendable {
    static let shared = StandardErrorWriter()
    private let lock = NIOLock()

    func write(_ line: String) {
        self.lock.withLock {
            FileHandle.standardError.write(Data(line.utf8))
        }
    }
}

/// Process-wide logging set-up for `braid-node`.
public enum NodeLogging {
    /// Bootstraps swift-log with the configured format and level. Call once, before creating loggers.
    public static func bootstrap(_ configuration: NodeConfiguration.Log) {
        let level = Logger.Level(configuration.level)
        switch configuration.format {
        case .text:
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        case .json:
            LoggingSystem.bootstrap { label in
                var handler = JSONLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}
