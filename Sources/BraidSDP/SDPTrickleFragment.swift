// Trickle ICE SDP fragments (RFC 8840 §9, https://www.rfc-editor.org/rfc/rfc8840#section-9), the body of a
// WHIP/WHEP PATCH with `Content-Type: application/trickle-ice-sdpfrag` (RFC 9725 §4.3.1).
//
//   sdpfrag        = *sdpfrag-session-level *sdpfrag-media-level
//   session level  = a=ice-options / a=ice-ufrag / a=ice-pwd / a=group ... (no v=, o=, s=, t=)
//   media level    = "m=" line, then a=mid / a=ice-ufrag / a=ice-pwd / a=candidate / a=end-of-candidates
//
// Example (RFC 9725 §4.3.1):
//   a=ice-ufrag:EsAw
//   a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y
//   m=audio 9 UDP/TLS/RTP/SAVPF 111
//   a=mid:0
//   a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1
//   a=end-of-candidates

/// A parsed `application/trickle-ice-sdpfrag` body: new candidates, or new credentials for an ICE restart.
public struct SDPTrickleFragment: Hashable, Sendable {
    /// One media section of the fragment.
    public struct Section: Hashable, Sendable {
        /// The `a=mid` the candidates belong to.
        public var mid: String?
        /// The section's `a=ice-ufrag` (falls back to the fragment's session level).
        public var iceUfrag: String?
        /// The section's `a=ice-pwd` (falls back to the fragment's session level).
        public var icePwd: String?
        /// The candidates, in order.
        public var candidates: [SDPCandidate]
        /// Whether the section says `a=end-of-candidates`.
        public var endOfCandidates: Bool
    }

    /// Session-level `a=ice-ufrag`.
    public var iceUfrag: String?
    /// Session-level `a=ice-pwd`.
    public var icePwd: String?
    /// Session-level `a=ice-options` tokens.
    public var iceOptions: [String]
    /// The media sections in order.
    public var sections: [Section]
    /// Session-level `a=end-of-candidates`, or every section has it.
    public var endOfCandidates: Bool
    /// The fragment as a model (session attributes and media sections), for anything not surfaced above.
    public var session: SessionDescription

    /// Parses a trickle fragment.
    /// - Throws: ``SDPError`` with a line number for malformed lines or attributes, and for lines a
    ///   fragment may not hold (`v=`, `o=`, `s=`, `t=`).
    public init(parsing text: String, limits: SDPLimits = .default) throws(SDPError) {
        let description = try SDPLineParser.parse(text, limits: limits, fragment: true)
        self.session = description
        self.iceUfrag = description.iceUfrag
        self.icePwd = description.icePwd
        self.iceOptions = description.iceOptions
        self.sections = description.media.map { media in
            Section(
                mid: media.mid,
                iceUfrag: media.iceUfrag ?? description.iceUfrag,
                icePwd: media.icePwd ?? description.icePwd,
                candidates: media.candidates,
                endOfCandidates: media.endOfCandidates || description.endOfCandidates
            )
        }
        self.endOfCandidates =
            description.endOfCandidates || (!self.sections.isEmpty && self.sections.allSatisfy(\.endOfCandidates))
    }

    /// Every candidate in the fragment, session-level ones first.
    public var allCandidates: [SDPCandidate] {
        self.session.candidates + self.sections.flatMap(\.candidates)
    }

    /// Whether the fragment carries credentials different from `ufrag`, which RFC 8839 §4.4.1.1.1 treats as
    /// an ICE restart.
    public func isICERestart(currentUfrag ufrag: String) -> Bool {
        let fragmentUfrag = self.iceUfrag ?? self.sections.lazy.compactMap(\.iceUfrag).first
        guard let fragmentUfrag else { return false }
        return fragmentUfrag != ufrag
    }
}
