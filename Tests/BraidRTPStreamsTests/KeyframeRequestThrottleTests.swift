import BraidRTPStreams
import BraidWire
import NIOCore
import Testing

@Suite struct KeyframeRequestThrottleTests {
    @Test func manySubscribersCollapseIntoOneRequest() {
        var throttle = KeyframeRequestThrottle(mediaSSRC: 0x5555, interval: .seconds(1))
        var sent: [KeyframeRequestThrottle.Request] = []
        for subscriber in 0..<20 {
            if let request = throttle.keyframeRequested(now: at(Int64(subscriber) * 10)) { sent.append(request) }
        }
        #expect(sent == [.new(firSequenceNumber: 1)])
        #expect(throttle.requestsCollapsed == 19)
        #expect(throttle.isWaitingForKeyframe)
    }

    @Test func retriesWhenNoKeyframeArrives() {
        var throttle = KeyframeRequestThrottle(mediaSSRC: 0x5555)
        #expect(throttle.keyframeRequested(now: at(0)) == .new(firSequenceNumber: 1))
        #expect(throttle.retryDue(now: at(999)) == nil)
        #expect(throttle.retryDue(now: at(1000)) == .retry(firSequenceNumber: 1))
        #expect(throttle.keyframeRequested(now: at(1500)) == nil)
        #expect(throttle.retryDue(now: at(2000)) == .retry(firSequenceNumber: 1))
        #expect(throttle.requestsSent == 3)
    }

    @Test func keyframeReleasesTheThrottle() {
        var throttle = KeyframeRequestThrottle(mediaSSRC: 0x5555, initialFIRSequenceNumber: 255)
        #expect(throttle.keyframeRequested(now: at(0)) == .new(firSequenceNumber: 0))  // wraps
        throttle.keyframeReceived()
        #expect(!throttle.isWaitingForKeyframe)
        #expect(throttle.retryDue(now: at(5000)) == nil)
        // A new request right after the keyframe goes out at once, as a new FIR.
        #expect(throttle.keyframeRequested(now: at(100)) == .new(firSequenceNumber: 1))
    }

    @Test func writesPLIAndFIR() throws {
        var throttle = KeyframeRequestThrottle(mediaSSRC: 0x0102_0304)
        let requested = throttle.keyframeRequested(now: at(0))
        let request = try #require(requested)
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        try throttle.writePLI(senderSSRC: 9, into: &buffer)
        let pli = try RTCPPictureLossIndication(buffer)
        #expect(pli.mediaSSRC == 0x0102_0304 && pli.senderSSRC == 9)

        buffer.clear()
        try throttle.writeFIR(request, senderSSRC: 9, into: &buffer)
        let fir = try RTCPFullIntraRequest(buffer)
        #expect(Array(fir.entries) == [.init(ssrc: 0x0102_0304, sequenceNumber: 1)])
    }
}
