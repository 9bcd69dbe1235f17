// SDP text parser (RFC 8866 §5 and §9, https://www.rfc-editor.org/rfc/rfc8866#section-9).
//
//   session-description = version-field origin-field session-name-field [information-field] [uri-field]
//                         *email-field *phone-field [connection-field] *bandwidth-field 1*time-description
//                         [key-field] *attribute-field *media-description
//   media-description   = media-field [information-field] *connection-field *bandwidth-field [key-field]
//                         *attribute-field
//   each line           = <type>=<value> CRLF      (LF alone is accepted: some stacks send it)

extension SessionDescription {
    /// Parses SDP text.
    ///
    /// Accepts CRLF or LF line endings and unknown attributes (kept verbatim, in order). Rejects, with an
    /// ``SDPError`` naming the line, malformed lines, unknown line types, misplaced lines and known
    /// attributes (`a=rtpmap`, `a=candidate`, `a=extmap`, …) whose value breaks their grammar.
    /// - Parameters:
    ///   - text: The SDP text.
    ///   - limits: Caps on size and counts, see ``SDPLimits``.
    public init(parsing text: String, limits: SDPLimits = .default) throws(SDPError) {
        self = try SDPLineParser.parse(text, limits: limits, fragment: false)
    }

    /// Parses SDP from raw bytes (for example an HTTP body); the bytes must be UTF-8.
    public init(parsing bytes: some Collection<UInt8>, limits: SDPLimits = .default) throws(SDPError) {
        if bytes.count > limits.maxBytes {
            throw SDPError(.limitExceeded, "SDP is \(bytes.count) bytes, limit \(limits.maxBytes)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw SDPError(.invalidEncoding, "SDP is not valid UTF-8")
        }
        self = try SDPLineParser.parse(text, limits: limits, fragment: false)
    }
}

/// The line-oriented parser shared by full descriptions and trickle fragments.
enum SDPLineParser {
    private enum Phase {
        case start, afterVersion, afterOrigin, session, media
    }

    static func parse(
        _ text: String,
        limits: SDPLimits,
        fragment: Bool
    ) throws(SDPError) -> SessionDescription {
        guard text.utf8.count <= limits.maxBytes else {
            throw SDPError(.limitExceeded, "SDP is \(text.utf8.count) bytes, limit \(limits.maxBytes)")
        }
        var description = SessionDescription(origin: SDPOrigin(sessionID: "0", sessionVersion: "0"), timings: [])
        var phase: Phase = fragment ? .session : .start
        var sawSessionName = false
        var sawConnection = false
        var lineNumber = 0
        var sessionAttributeCount = 0

        for rawLine in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            guard lineNumber <= limits.maxLines else {
                throw SDPError(.limitExceeded, "more than \(limits.maxLines) lines", line: lineNumber)
            }
            var line = rawLine
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if line.isEmpty { continue }
            guard line.count <= limits.maxLineLength else {
                throw SDPError(
                    .limitExceeded,
                    "line is \(line.count) bytes, limit \(limits.maxLineLength)",
                    line: lineNumber
                )
            }
            if line.contains(0) || line.contains(UInt8(ascii: "\r")) {
                throw SDPError(.invalidEncoding, "line holds a NUL or a bare CR", line: lineNumber)
            }
            let type = line[line.startIndex]
            guard line.count >= 2, line[line.index(after: line.startIndex)] == UInt8(ascii: "="),
                UInt8(ascii: "a") <= type, type <= UInt8(ascii: "z")
            else {
                throw SDPError(.malformedLine, "expected <letter>=<value>", line: lineNumber)
            }
            let value = Substring(line.dropFirst(2))

            do throws(SDPError) {
                switch (phase, type) {
                case (.start, UInt8(ascii: "v")):
                    guard value == "0" else { throw SDPError(.malformedLine, "v= must be 0") }
                    phase = .afterVersion
                case (.start, _):
                    throw SDPError(.missingLine, "SDP must start with v=")
                case (.afterVersion, UInt8(ascii: "o")):
                    description.origin = try parseOrigin(value)
                    phase = .afterOrigin
                case (.afterVersion, _):
                    throw SDPError(.missingLine, "o= must follow v=")
                case (.afterOrigin, UInt8(ascii: "s")):
                    // RFC 8866 §5.3: a single space when there is no name; some stacks send it empty.
                    description.sessionName = String(value)
                    sawSessionName = true
                    phase = .session
                case (.afterOrigin, _):
                    throw SDPError(.missingLine, "s= must follow o=")

                case (.session, UInt8(ascii: "i")) where !fragment:
                    guard description.information == nil else { throw SDPError(.misplacedLine, "second i= line") }
                    description.information = String(value)
                case (.session, UInt8(ascii: "u")) where !fragment:
                    description.uri = String(value)
                case (.session, UInt8(ascii: "e")) where !fragment:
                    description.emails.append(String(value))
                case (.session, UInt8(ascii: "p")) where !fragment:
                    description.phones.append(String(value))
                case (.session, UInt8(ascii: "c")):
                    guard !sawConnection else { throw SDPError(.misplacedLine, "second session-level c= line") }
                    description.connection = try parseConnection(value)
                    sawConnection = true
                case (.session, UInt8(ascii: "b")):
                    description.bandwidths.append(try parseBandwidth(value))
                case (.session, UInt8(ascii: "t")) where !fragment:
                    description.timings.append(try parseTiming(value))
                case (.session, UInt8(ascii: "r")) where !fragment:
                    guard !description.timings.isEmpty else { throw SDPError(.misplacedLine, "r= before t=") }
                    description.timings[description.timings.count - 1].repeats.append(String(value))
                case (.session, UInt8(ascii: "z")) where !fragment:
                    description.timeZones = String(value)
                case (.session, UInt8(ascii: "k")):
                    description.encryptionKey = String(value)
                case (.session, UInt8(ascii: "a")):
                    sessionAttributeCount += 1
                    guard sessionAttributeCount <= limits.maxAttributesPerSection else {
                        throw SDPError(.limitExceeded, "more than \(limits.maxAttributesPerSection) session attributes")
                    }
                    description.attributes.append(try parseAttribute(value))

                case (.session, UInt8(ascii: "m")), (.media, UInt8(ascii: "m")):
                    if !fragment && description.timings.isEmpty {
                        throw SDPError(.missingLine, "no t= line before the first m= line")
                    }
                    guard description.media.count < limits.maxMediaSections else {
                        throw SDPError(.limitExceeded, "more than \(limits.maxMediaSections) media sections")
                    }
                    description.media.append(try parseMediaLine(value))
                    phase = .media

                case (.media, UInt8(ascii: "i")):
                    let index = description.media.count - 1
                    guard description.media[index].information == nil else {
                        throw SDPError(.misplacedLine, "second i= line in a media section")
                    }
                    description.media[index].information = String(value)
                case (.media, UInt8(ascii: "c")):
                    description.media[description.media.count - 1].connections.append(try parseConnection(value))
                case (.media, UInt8(ascii: "b")):
                    description.media[description.media.count - 1].bandwidths.append(try parseBandwidth(value))
                case (.media, UInt8(ascii: "k")):
                    description.media[description.media.count - 1].encryptionKey = String(value)
                case (.media, UInt8(ascii: "a")):
                    let index = description.media.count - 1
                    guard description.media[index].attributes.count < limits.maxAttributesPerSection else {
                        throw SDPError(
                            .limitExceeded,
                            "more than \(limits.maxAttributesPerSection) attributes in a section"
                        )
                    }
                    description.media[index].attributes.append(try parseAttribute(value))

                case (_, let letter):
                    let name = Character(Unicode.Scalar(letter))
                    if "vostrzuep".contains(name) {
                        throw SDPError(.misplacedLine, "\(name)= line is not allowed here")
                    }
                    throw SDPError(.unknownLineType, "unknown line type \(name)=")
                }
            } catch {
                throw error.at(line: lineNumber)
            }
        }

        lineNumber += 1
        if !fragment {
            switch phase {
            case .start: throw SDPError(.missingLine, "empty SDP: no v= line")
            case .afterVersion: throw SDPError(.missingLine, "no o= line")
            case .afterOrigin: throw SDPError(.missingLine, "no s= line")
            case .session, .media: break
            }
            if !sawSessionName { throw SDPError(.missingLine, "no s= line") }
            if description.timings.isEmpty { throw SDPError(.missingLine, "no t= line") }
        }
        return description
    }

    // MARK: Lines

    /// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`
    static func parseOrigin(_ value: Substring) throws(SDPError) -> SDPOrigin {
        let fields = value.split(separator: " ")
        guard fields.count == 6 else { throw SDPError(.malformedLine, "o= line needs 6 fields, found \(fields.count)") }
        guard fields[1].allSatisfy(\.isASCIIDigit), fields[2].allSatisfy(\.isASCIIDigit) else {
            throw SDPError(.malformedLine, "o= session id and version must be decimal numbers")
        }
        return SDPOrigin(
            username: String(fields[0]),
            sessionID: String(fields[1]),
            sessionVersion: String(fields[2]),
            networkType: String(fields[3]),
            addressType: String(fields[4]),
            address: String(fields[5])
        )
    }

    /// `c=<nettype> <addrtype> <connection-address>`
    static func parseConnection(_ value: Substring) throws(SDPError) -> SDPConnection {
        let fields = value.split(separator: " ")
        guard fields.count == 3 else { throw SDPError(.malformedLine, "c= line needs 3 fields, found \(fields.count)") }
        return SDPConnection(networkType: String(fields[0]), addressType: String(fields[1]), address: String(fields[2]))
    }

    /// `b=<bwtype>:<bandwidth>`
    static func parseBandwidth(_ value: Substring) throws(SDPError) -> SDPBandwidth {
        guard let colon = value.firstIndex(of: ":"), colon != value.startIndex,
            let amount = SDPNumber.parse(value[value.index(after: colon)...], as: UInt64.self)
        else {
            throw SDPError(.malformedLine, "b= line must be <type>:<number>")
        }
        return SDPBandwidth(type: String(value[..<colon]), value: amount)
    }

    /// `t=<start-time> <stop-time>`
    static func parseTiming(_ value: Substring) throws(SDPError) -> SDPTiming {
        let fields = value.split(separator: " ")
        guard fields.count == 2, let start = SDPNumber.parse(fields[0], as: UInt64.self),
            let stop = SDPNumber.parse(fields[1], as: UInt64.self)
        else {
            throw SDPError(.malformedLine, "t= line must be two decimal times")
        }
        return SDPTiming(start: start, stop: stop)
    }

    /// `m=<media> <port>[/<number of ports>] <proto> <fmt> ...`
    static func parseMediaLine(_ value: Substring) throws(SDPError) -> SDPMediaDescription {
        let fields = value.split(separator: " ")
        guard fields.count >= 4 else {
            throw SDPError(.malformedLine, "m= line needs 4+ fields, found \(fields.count)")
        }
        var portText = fields[1]
        var portCount: UInt16?
        if let slash = portText.firstIndex(of: "/") {
            guard let count = SDPNumber.parse(portText[portText.index(after: slash)...], as: UInt16.self) else {
                throw SDPError(.malformedLine, "m= port count is not a number in 0...65535")
            }
            portCount = count
            portText = portText[..<slash]
        }
        guard let port = SDPNumber.parse(portText, as: UInt16.self) else {
            throw SDPError(.malformedLine, "m= port is not a number in 0...65535")
        }
        return SDPMediaDescription(
            kind: SDPMediaKind(rawValue: String(fields[0])),
            port: port,
            portCount: portCount,
            proto: String(fields[2]),
            formats: fields[3...].map(String.init)
        )
    }

    /// `a=<attribute-name>[:<attribute-value>]`; known WebRTC attributes are checked against their grammar.
    static func parseAttribute(_ value: Substring) throws(SDPError) -> SDPAttribute {
        let name: Substring
        let attributeValue: Substring?
        if let colon = value.firstIndex(of: ":") {
            name = value[..<colon]
            attributeValue = value[value.index(after: colon)...]
        } else {
            name = value
            attributeValue = nil
        }
        guard !name.isEmpty, name.utf8.allSatisfy(SDPToken.isTokenByte) else {
            throw SDPError(.malformedLine, "attribute name must be a token")
        }
        try SDPAttributeGrammar.validate(name: name, value: attributeValue)
        return SDPAttribute(String(name), attributeValue.map(String.init))
    }
}

/// Overflow-checked decimal parsing: digits only, no sign, no whitespace.
enum SDPNumber {
    static func parse<T: FixedWidthInteger & UnsignedInteger>(_ text: Substring, as type: T.Type) -> T? {
        guard !text.isEmpty, text.utf8.count <= 20 else { return nil }
        var result: T = 0
        for byte in text.utf8 {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times10, overflow1) = result.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(T(byte - UInt8(ascii: "0")))
            if overflow1 || overflow2 { return nil }
            result = sum
        }
        return result
    }
}

/// RFC 8866 §9 `token-char`: printable ASCII except space and `"(),/:;<=>?@[\]{}`.
enum SDPToken {
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x21, 0x23...0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x30...0x39, 0x41...0x5A, 0x5E...0x7E: true
        default: false
        }
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { self >= "0" && self <= "9" }
}
