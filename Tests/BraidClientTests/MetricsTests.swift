import BraidRTPStreams
import BraidWire
import NIOCore
import Testing

@testable import BraidClient

@Suite("Freeze detection, latency maths and transport-wide feedback")
struct MetricsTests {
    static func render(_ intervals: [Int], into detector: inout FreezeDetector) -> [Bool] {
        var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var result = [detector.frameRendered(at: now)]
        for interval in intervals {
            now = now + .milliseconds(Int64(interval))
            result.append(detector.frameRendered(at: now))
        }
        return result
    }

    @Test("A gap of max(3 x avg, avg + 150 ms) after steady 30 fps is one freeze of that length")
    func freezeAtThreshold() {
        // avg 33 ms: threshold max(99, 183) = 183 ms.
        var below = FreezeDetector()
        let flags = Self.render(Array(repeating: 33, count: 20) + [182], into: &below)
        #expect(!flags.contains(true))
        var detector = FreezeDetector()
        let frozen = Self.render(Array(repeating: 33, count: 20) + [183, 33, 33], into: &detector)
        #expect(frozen.filter { $0 }.count == 1)
        #expect(frozen[21])
        #expect(detector.freezeCount == 1)
        #expect(detector.totalFreezesDuration == .milliseconds(183))
        #expect(detector.framesRendered == 24)
    }

    @Test("At a low frame rate the 3 x avg term decides")
    func lowFrameRate() {
        var detector = FreezeDetector()
        // avg 200 ms: threshold max(600, 350) = 600 ms.
        _ = Self.render(Array(repeating: 200, count: 10) + [500, 599], into: &detector)
        #expect(detector.freezeCount == 0)
        var second = FreezeDetector()
        _ = Self.render(Array(repeating: 200, count: 10) + [700], into: &second)
        #expect(second.freezeCount == 1)
    }

    @Test("Nothing is detected before 5 intervals are known")
    func needsSamples() {
        var detector = FreezeDetector()
        _ = Self.render([33, 33, 33, 33, 1000], into: &detector)
        #expect(detector.freezeCount == 0)
        _ = Self.render([33, 33, 33, 33, 33, 2000], into: &detector)
        #expect(detector.freezeCount == 1)
    }

    @Test("NTP conversion and differences")
    func ntp() {
        #expect(NTPTime.timestamp(unixSeconds: 0, nanoseconds: 0) == 2_208_988_800 << 32)
        #expect(
            NTPTime.timestamp(unixSeconds: 1, nanoseconds: 500_000_000) == (UInt64(2_208_988_801) << 32 | 0x8000_0000))
        let a = NTPTime.timestamp(unixSeconds: 1_700_000_000, nanoseconds: 250_000_000)
        let b = NTPTime.timestamp(unixSeconds: 1_700_000_001, nanoseconds: 12_000_000)
        #expect(NTPTime.microseconds(from: a, to: b) == 762_000)
        #expect(NTPTime.microseconds(from: b, to: a) == -762_000)
        // The wall clock is in this era and moves forward.
        let now = NTPTime.now()
        #expect(now >> 32 > 3_900_000_000)
    }

    @Test("Latency of a packet is receive time minus abs-capture-time")
    func latencyFromExtension() throws {
        let capture = NTPTime.timestamp(unixSeconds: 1_700_000_000, nanoseconds: 0)
        var buffer = ByteBuffer()
        var extensions = RTPHeaderExtensionBuilder()
        try extensions.append(AbsCaptureTime(captureTimestamp: capture), id: 5)
        try buffer.writeRTPPacket(
            RTPHeader(payloadType: 96, sequenceNumber: 1, timestamp: 1, ssrc: 1), extensions: extensions,
            payload: ByteBuffer(bytes: [1, 2, 3]))
        let packet = try RTPPacket(buffer)
        let value = try #require(try packet.headerExtension(AbsCaptureTime.self, id: 5))
        let received = NTPTime.timestamp(unixSeconds: 1_700_000_000, nanoseconds: 37_500_000)
        #expect(NTPTime.microseconds(from: value.captureTimestamp, to: received) == 37_500)
    }

    @Test("Histogram percentiles have 1 ms resolution and exact extremes")
    func histogram() {
        var histogram = LatencyHistogram()
        #expect(histogram.percentile(0.5) == nil && histogram.mean == nil)
        for value in 1...100 { histogram.record(microseconds: Int64(value) * 1000 - 500) }
        histogram.record(microseconds: -5)
        histogram.record(microseconds: 10_000_000)
        #expect(histogram.count == 101 && histogram.negativeCount == 1)
        #expect(histogram.percentile(0.5) == 51_000)
        #expect(histogram.percentile(0.95) == 96_000)
        #expect(histogram.percentile(1.0) == 10_000_000)
        #expect(histogram.minimum == 500 && histogram.maximum == 10_000_000)
        let summary = LatencySummary(histogram)
        #expect(summary.p50 == .milliseconds(51))
    }

    @Test("Transport-wide feedback reports each sequence number once, losses as not received")
    func transportFeedback() throws {
        var recorder = TransportFeedbackRecorder()
        let base: Int64 = 1_000_000
        for (sequence, offset) in [(65_534, 0), (65_535, 1_000), (1, 5_000), (2, 5_250)] as [(UInt16, Int64)] {
            recorder.record(sequence, arrivalMicroseconds: base + offset)
        }
        var bigger = RTCPCompoundBuilder(
            buffer: {
                var b = ByteBuffer()
                b.reserveCapacity(1500)
                return b
            }())
        #expect(recorder.write(senderSSRC: 1, mediaSSRC: 2, into: &bigger) == 1)
        let compound = try RTCPCompoundPacket(bigger.finish())
        var statuses: [RTCPTransportWideFeedback.PacketStatus] = []
        for packet in compound {
            guard case .transportWideFeedback(let feedback) = packet else {
                Issue.record("expected TWCC, got \(packet)")
                continue
            }
            #expect(feedback.baseSequenceNumber == 65_534)
            statuses += Array(feedback.packets)
        }
        #expect(statuses.map(\.sequenceNumber) == [65_534, 65_535, 0, 1, 2])
        #expect(statuses.map { $0.arrivalOffset != nil } == [true, true, false, true, true])
        let offsets = statuses.compactMap(\.arrivalOffset)
        #expect(
            offsets[1] - offsets[0] == 1_000 && offsets[2] - offsets[0] == 5_000 && offsets[3] - offsets[0] == 5_250)
        // Nothing new: nothing written; a late arrival for a reported number is ignored.
        recorder.record(0, arrivalMicroseconds: base + 9_000)
        var again = RTCPCompoundBuilder(
            buffer: {
                var b = ByteBuffer()
                b.reserveCapacity(1500)
                return b
            }())
        #expect(recorder.write(senderSSRC: 1, mediaSSRC: 2, into: &again) == 0)
    }
}
