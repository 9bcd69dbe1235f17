/// A strict parser of the Prometheus text exposition format 0.0.4, for checking `/metrics`.
///
/// Rules checked (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format):
/// - lines end in `\n`; empty lines are ignored; a `#` line is `# HELP name text` or `# TYPE name type`
///   (other comments are allowed only if they are neither);
/// - metric names match `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*`, label values
///   are double-quoted with `\\`, `\"` and `\n` escapes, no duplicate label names in one sample;
/// - values are Go-style floats (`1`, `-2.5e3`, `+Inf`, `-Inf`, `NaN`), optionally followed by an
///   integer timestamp;
/// - at most one TYPE and one HELP per family, the TYPE before the family's first sample, and a family's
///   samples are contiguous.
struct PrometheusTextParser {
    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    struct ParseError: Error, CustomStringConvertible {
        var line: Int
        var message: String
        var description: String { "line \(self.line): \(self.message)" }
    }

    private(set) var samples: [Sample] = []
    private(set) var types: [String: String] = [:]
    private(set) var helps: [String: String] = [:]

    init(_ text: String) throws {
        guard text.isEmpty || text.hasSuffix("\n") else { throw ParseError(line: 0, message: "no final newline") }
        var finishedFamilies: Set<String> = []
        var currentFamily: String?
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().enumerated() {
            let number = index + 1
            let line = String(rawLine)
            if line.trimmingSpaces.isEmpty { continue }
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
                guard parts.count >= 3, parts[0] == "#", parts[1] == "HELP" || parts[1] == "TYPE" else { continue }
                let name = String(parts[2])
                guard Self.isMetricName(name) else { throw ParseError(line: number, message: "bad name \(name)") }
                if parts[1] == "TYPE" {
                    guard parts.count == 4,
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(String(parts[3]))
                    else { throw ParseError(line: number, message: "bad TYPE line") }
                    guard self.types[name] == nil else {
                        throw ParseError(line: number, message: "second TYPE \(name)")
                    }
                    guard !self.samples.contains(where: { Self.family(of: $0.name, types: [:]) == name }) else {
                        throw ParseError(line: number, message: "TYPE after samples of \(name)")
                    }
                    self.types[name] = String(parts[3])
                } else {
                    guard self.helps[name] == nil else {
                        throw ParseError(line: number, message: "second HELP \(name)")
                    }
                    self.helps[name] = parts.count == 4 ? String(parts[3]) : ""
                }
                continue
            }
            let sample = try Self.parseSample(line, number: number)
            let family = Self.family(of: sample.name, types: self.types)
            if family != currentFamily {
                if let currentFamily { finishedFamilies.insert(currentFamily) }
                guard !finishedFamilies.contains(family) else {
                    throw ParseError(line: number, message: "samples of \(family) are not contiguous")
                }
                currentFamily = family
            }
            self.samples.append(sample)
        }
    }

    /// The value of the one sample with this name and exactly these labels.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let matches = self.samples.filter { $0.name == name && $0.labels == labels }
        return matches.count == 1 ? matches[0].value : nil
    }

    /// Histogram and summary samples (`_bucket`, `_sum`, `_count`) belong to their base family.
    private static func family(of name: String, types: [String: String]) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if let type = types[base], type == "histogram" || type == "summary" { return base }
        }
        return name
    }

    private static func parseSample(_ line: String, number: Int) throws -> Sample {
        var rest = Substring(line)
        let name = String(rest.prefix { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") })
        guard Self.isMetricName(name) else { throw ParseError(line: number, message: "bad metric name in \(line)") }
        rest = rest.dropFirst(name.count)
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while rest.first != "}" {
                let labelName = String(rest.prefix { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
                guard Self.isLabelName(labelName) else { throw ParseError(line: number, message: "bad label name") }
                rest = rest.dropFirst(labelName.count)
                guard rest.first == "=" else { throw ParseError(line: number, message: "expected =") }
                rest = rest.dropFirst()
                guard rest.first == "\"" else { throw ParseError(line: number, message: "expected \"") }
                rest = rest.dropFirst()
                var value = ""
                var closed = false
                while let character = rest.first {
                    rest = rest.dropFirst()
                    if character == "\"" {
                        closed = true
                        break
                    }
                    if character == "\\" {
                        guard let escaped = rest.first else { break }
                        rest = rest.dropFirst()
                        switch escaped {
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        case "n": value.append("\n")
                        default: throw ParseError(line: number, message: "bad escape \\\(escaped)")
                        }
                    } else {
                        value.append(character)
                    }
                }
                guard closed else { throw ParseError(line: number, message: "unterminated label value") }
                guard labels[labelName] == nil else { throw ParseError(line: number, message: "duplicate label") }
                labels[labelName] = value
                if rest.first == "," { rest = rest.dropFirst() } else if rest.first != "}" {
                    throw ParseError(line: number, message: "expected , or }")
                }
            }
            rest = rest.dropFirst()
        }
        guard rest.first == " " else { throw ParseError(line: number, message: "expected space before value") }
        let fields = rest.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 1 || fields.count == 2 else { throw ParseError(line: number, message: "bad value part") }
        guard let value = Self.parseFloat(String(fields[0])) else {
            throw ParseError(line: number, message: "bad value \(fields[0])")
        }
        if fields.count == 2, Int64(fields[1]) == nil {
            throw ParseError(line: number, message: "bad timestamp \(fields[1])")
        }
        return Sample(name: name, labels: labels, value: value)
    }

    private static func parseFloat(_ text: String) -> Double? {
        switch text {
        case "+Inf", "Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default:
            // Digits, sign, point and exponent only: Swift's Double(_:) would also take "0x1p3" and "inf".
            guard !text.isEmpty, text.allSatisfy({ "0123456789+-.eE".contains($0) }) else { return nil }
            return Double(text)
        }
    }

    static func isMetricName(_ name: String) -> Bool {
        guard let first = name.first, first.isASCII, first.isLetter || first == "_" || first == ":" else {
            return false
        }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") }
    }

    static func isLabelName(_ name: String) -> Bool {
        guard let first = name.first, first.isASCII, first.isLetter || first == "_" else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }
}

extension String {
    fileprivate var trimmingSpaces: Substring {
        self.drop { $0 == " " || $0 == "\t" }
    }
}
