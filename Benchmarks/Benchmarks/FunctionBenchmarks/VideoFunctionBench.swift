// The transcode and composite edge functions' work per output frame, without threads or sockets: input
// RTP payloads reassembled, decoded (libvpx), box-scaled (libyuv), encoded (libvpx). Wall time per frame
// over 33.3 ms (30 fps) is the share of a core one function takes. Targets of the issue: ≥ 6 transcodes
// 720p → 360p at 30 fps per core (≤ 5.5 ms per frame); a 9-input 360p composite at 30 fps on one core
// (≤ 33 ms per output frame).
import BraidCodecs
import BraidFunctions
import BraidRTPStreams
import NIOCore

/// A looped input stream: `frames` pre-encoded frames of a moving test pattern (frame 0 a keyframe), as
/// RTP payloads; replayed with ever-increasing sequence numbers and timestamps.
final class RecordedVideo {
    private let frames: [[[UInt8]]]
    private var frame = 0
    private var sequenceNumber: UInt16 = 0

    init(width: Int, height: Int, bitrate: Int, frames count: Int = 60) throws {
        let encoder = try VP8Encoder(
            VP8Encoder.Configuration(width: width, height: height, bitrate: bitrate, cpuUsed: -8))
        let pattern = try TestPattern(width: width, height: height)
        let picture = try I420Buffer(width: width, height: height)
        var packetizer = VP8Packetizer()
        var scratch = ByteBuffer()
        var frames: [[[UInt8]]] = []
        for index in 0..<count {
            try pattern.render(frameIndex: index, into: picture)
            var packets: [[UInt8]] = []
            try picture.withImage { image throws(CodecError) in
                try encoder.encode(image, forceKeyframe: index == 0) { encoded in
                    packetizer.packetize(frame: ByteBuffer(bytes: encoded.data), scratch: &scratch) { payload, _ in
                        packets.append(Array(payload.readableBytesView))
                    }
                }
            }
            frames.append(packets)
        }
        self.frames = frames
    }

    /// Hands the next frame's packets to `body` (sequence number, timestamp, marker, payload).
    func next(_ body: (UInt16, UInt32, Bool, UnsafeRawBufferPointer) -> Void) {
        let packets = self.frames[self.frame % self.frames.count]
        let timestamp = UInt32(truncatingIfNeeded: self.frame * 3_000)
        for (index, packet) in packets.enumerated() {
            packet.withUnsafeBytes { body(self.sequenceNumber, timestamp, index == packets.count - 1, $0) }
            self.sequenceNumber &+= 1
        }
        self.frame += 1
    }
}

/// `transcode` 1280×720 (1.5 Mbit/s) → 640×360 at 500 kbit/s: one input frame per step.
final class TranscodeBench {
    let transcode: Transcode
    let input: RecordedVideo
    private var now = NIODeadline.uptimeNanoseconds(1_000_000_000)

    init() throws {
        self.transcode = try Transcode(configuration: .init(width: 640, height: 360, bitrate: 500_000))
        try self.transcode.addInput("in", participant: "p")
        self.input = try RecordedVideo(width: 1280, height: 720, bitrate: 1_500_000)
        for _ in 0..<5 { self.step() }
    }

    /// One input frame through the function; returns the bytes emitted.
    @discardableResult
    func step() -> Int {
        var bytes = 0
        self.now = self.now + .milliseconds(33)
        let now = self.now
        self.input.next { sequenceNumber, timestamp, marker, payload in
            self.transcode.receive(
                "in", sequenceNumber: sequenceNumber, timestamp: timestamp, marker: marker, payload: payload,
                arrivalNanoseconds: Int64(now.uptimeNanoseconds), captureNTP: nil, now: now
            ) { bytes += $0.data.count }
        }
        return bytes
    }
}

/// `composite` of nine 640×360 inputs (500 kbit/s each) into a 640×360 grid: one output frame per step.
final class CompositeBench {
    let composite: Composite
    let inputs: [RecordedVideo]
    /// Input ids made once: an interpolated string per packet would be the benchmark's own malloc.
    let ids: [String]
    private var now = NIODeadline.uptimeNanoseconds(1_000_000_000)

    init(inputs count: Int = 9) throws {
        self.composite = try Composite(configuration: .init(width: 640, height: 360, bitrate: 800_000))
        var inputs: [RecordedVideo] = []
        for index in 0..<count {
            try self.composite.addInput("in\(index)", participant: "p\(index)")
            inputs.append(try RecordedVideo(width: 640, height: 360, bitrate: 500_000, frames: 30))
        }
        self.inputs = inputs
        self.ids = (0..<count).map { "in\($0)" }
        self.composite.setActiveSpeaker("p4")
        for _ in 0..<5 { self.step() }
    }

    /// A frame of every input, then one output frame; returns the bytes emitted.
    @discardableResult
    func step() -> Int {
        self.now = self.now + .milliseconds(33)
        let now = self.now
        for (index, input) in self.inputs.enumerated() {
            input.next { sequenceNumber, timestamp, marker, payload in
                self.composite.receive(
                    self.ids[index], sequenceNumber: sequenceNumber, timestamp: timestamp, marker: marker,
                    payload: payload, arrivalNanoseconds: 0, captureNTP: nil, now: now)
            }
        }
        var bytes = 0
        self.composite.tick(now: now) { bytes += $0.data.count }
        return bytes
    }
}
