import BraidFunctions
import Testing

/// What a turn yielded, copied out of the buffer.
enum Played: Equatable {
    case frame([UInt8])
    case lost(next: [UInt8]?)
    case idle
}

extension AudioJitterBuffer {
    mutating func insert(_ frame: Int, arrival: Int64 = 0) -> InsertOutcome {
        let payload: [UInt8] = [UInt8(truncatingIfNeeded: frame), 0xAB]
        return payload.withUnsafeBytes {
            self.insert(timestamp: UInt32(truncatingIfNeeded: 48_000 + frame * 960), payload: $0, arrivalNanoseconds: arrival)
        }
    }

    mutating func play() -> Played {
        self.pop { turn in
            switch turn {
            case .frame(let bytes, _): .frame(Array(bytes))
            case .lost(let next): .lost(next: next.map { Array($0) })
            case .idle: .idle
            }
        }
    }
}

func frame(_ index: Int) -> Played { .frame([UInt8(truncatingIfNeeded: index), 0xAB]) }

@Suite struct AudioJitterBufferTests {
    @Test func framesComeOutInTimestampOrderAfterTheBufferingDelay() {
        var buffer = AudioJitterBuffer(configuration: .init(delayFrames: 2))
        #expect(buffer.insert(0) == .stored)
        #expect(buffer.play() == .idle)
        #expect(buffer.insert(2) == .stored)
        #expect(buffer.insert(1) == .stored)
        #expect(buffer.play() == .idle)
        #expect([buffer.play(), buffer.play(), buffer.play()] == [frame(0), frame(1), frame(2)])
        #expect(buffer.framesPlayed == 3 && buffer.framesLost == 0)
    }

    @Test func aMissingFrameIsLostWithTheNextFrameForFECAndALateOneIsRefused() {
        var buffer = AudioJitterBuffer(configuration: .init(delayFrames: 1))
        _ = buffer.insert(0)
        _ = buffer.insert(2)
        _ = buffer.insert(3)
        #expect(buffer.play() == .idle)
        #expect(buffer.play() == frame(0))
        #expect(buffer.play() == .lost(next: [2, 0xAB]))
        #expect(buffer.insert(1) == .late)
        // A late frame grows the delay by one: one concealed turn, then the stream goes on.
        #expect(buffer.targetDelay == 2)
        #expect(buffer.play() == .lost(next: nil))
        #expect(buffer.play() == frame(2))
        #expect(buffer.insert(3) == .duplicate)
        #expect(buffer.play() == frame(3))
        #expect(buffer.framesLost == 1 && buffer.framesLate == 1 && buffer.duplicates == 1 && buffer.framesStretched == 1)
    }

    @Test func aLateFrameRaisesTheDelayAtOnce() {
        var buffer = AudioJitterBuffer(configuration: .init(delayFrames: 1, maximumDelayFrames: 3))
        _ = buffer.insert(0)
        _ = buffer.play()
        #expect(buffer.play() == frame(0))
        // Frames 1, 2 and 3 each come one turn late: each raises the delay by a frame (one stretched turn),
        // up to its maximum and not beyond.
        var sent = 1
        for _ in 0..<3 {
            for _ in 0..<5 where buffer.play() == .lost(next: nil) { break }
            #expect(buffer.insert(sent) == .late)
            sent += 1
            _ = buffer.play()  // The stretched turn, or the next frame's turn once at the maximum.
        }
        #expect(buffer.targetDelay == 3 && buffer.framesLate == 3 && buffer.framesStretched == 2)
    }

    /// Plays `seconds` of a 20 ms stream whose frame `i` arrives `jitter(i)` ns after its send time; returns
    /// the frames that came after their turn.
    private func run(
        _ buffer: inout AudioJitterBuffer, from first: Int, seconds: Int, jitter: (Int) -> Int64
    ) -> Int {
        let lateBefore = buffer.framesLate
        let turns = seconds * 50
        var next = first
        for turn in first..<(first + turns) {
            let now = Int64(turn) * 20_000_000
            // Every frame that has arrived by this turn, in arrival order.
            while next < first + turns + 20, Int64(next) * 20_000_000 + jitter(next) <= now {
                _ = buffer.insert(next, arrival: Int64(next) * 20_000_000 + jitter(next))
                next += 1
            }
            _ = buffer.play()
        }
        return buffer.framesLate - lateBefore
    }

    @Test func theDelayFollowsThePercentileOfTransitAndComesBackDown() {
        var buffer = AudioJitterBuffer()
        // Every tenth frame 50 ms late: the 95th percentile of transit is 50 ms past the fastest, so the
        // delay settles at 3 frames and, after the first seconds, no frame is late any more.
        let jittery: (Int) -> Int64 = { $0 % 10 == 5 ? 50_000_000 : 0 }
        _ = self.run(&buffer, from: 0, seconds: 3, jitter: jittery)
        #expect(buffer.targetDelay == 3, "delay \(buffer.targetDelay)")
        let lateLater = self.run(&buffer, from: 150, seconds: 5, jitter: jittery)
        #expect(lateLater == 0, "\(lateLater) late frames once adapted")
        // The jitter stops: once the 5 s history holds only punctual frames, the delay comes down a frame
        // a second, to the minimum.
        let late = self.run(&buffer, from: 400, seconds: 9, jitter: { _ in 0 })
        #expect(late == 0)
        #expect(buffer.targetDelay == 1, "delay \(buffer.targetDelay)")
        #expect(buffer.depth <= 2, "depth \(buffer.depth)")
    }

    @Test func aStandingQueueIsDrained() {
        var buffer = AudioJitterBuffer()
        // A stall of 200 ms at frame 100 (frames 100...109 arrive together at 2.2 s), then punctual again:
        // the burst leaves ten frames more in the buffer than the target needs, which the buffer skips
        // within a few seconds instead of keeping 200 ms of delay for good.
        let stalled: (Int) -> Int64 = { index in (100..<110).contains(index) ? Int64(110 - index) * 20_000_000 : 0 }
        _ = self.run(&buffer, from: 0, seconds: 3, jitter: stalled)
        let skippedBefore = buffer.framesSkipped
        _ = self.run(&buffer, from: 150, seconds: 10, jitter: { _ in 0 })
        #expect(buffer.framesSkipped > skippedBefore)
        #expect(buffer.depth <= buffer.targetDelay + 1, "depth \(buffer.depth), delay \(buffer.targetDelay)")
        #expect(buffer.targetDelay <= 2, "delay \(buffer.targetDelay)")
    }

    @Test func anInputWithNothingBufferedConcealsAWhileThenGoesIdleAndRestarts() {
        var buffer = AudioJitterBuffer(configuration: .init(delayFrames: 1, idleAfterFrames: 3))
        _ = buffer.insert(0)
        #expect(buffer.play() == .idle)
        #expect(buffer.play() == frame(0))
        // Nothing more: two concealed turns, then idle.
        #expect([buffer.play(), buffer.play()] == [.lost(next: nil), .lost(next: nil)])
        #expect(buffer.play() == .idle)
        #expect(!buffer.isActive)
        // Back after a pause (DTX, mute): buffering again, then plays.
        _ = buffer.insert(50)
        #expect(buffer.isActive)
        #expect(buffer.play() == .idle)
        #expect(buffer.play() == frame(50))
    }

    @Test func tooMuchBufferedSkipsTheOldestBackToTheTargetDelay() {
        let configuration = AudioJitterBuffer.Configuration(delayFrames: 2, maximumExtraFrames: 3)
        var buffer = AudioJitterBuffer(configuration: configuration)
        for index in 0..<3 { _ = buffer.insert(index) }
        #expect(buffer.play() == .idle)
        #expect(buffer.play() == .idle)
        #expect(buffer.play() == frame(0))
        // A burst after a stall: 3...9 arrive at once; at most delay + extra (5) frames are kept, so
        // 1...4 are skipped.
        for index in 3..<10 { _ = buffer.insert(index) }
        #expect(buffer.framesSkipped == 4)
        #expect(buffer.depth == 5)
        #expect(buffer.play() == frame(5))
    }

    @Test func aTimestampJumpRestartsTheStreamAndOversizedPayloadsAreRefused() {
        var buffer = AudioJitterBuffer(configuration: .init(delayFrames: 1, maximumPayloadBytes: 4))
        _ = buffer.insert(0)
        _ = buffer.play()
        #expect(buffer.play() == frame(0))
        _ = buffer.insert(10_000)
        #expect(buffer.play() == .idle)
        #expect(buffer.play() == frame(10_000))
        let large = [UInt8](repeating: 1, count: 5)
        #expect(large.withUnsafeBytes { buffer.insert(timestamp: 0, payload: $0, arrivalNanoseconds: 0) } == .tooLarge)
    }

    @Test func timestampsWrapAround() {
        var buffer = AudioJitterBuffer(configuration: .init(delayFrames: 1))
        let base = UInt32.max - 960 + 1
        for index in 0..<3 {
            let payload: [UInt8] = [UInt8(index)]
            _ = payload.withUnsafeBytes {
                buffer.insert(timestamp: base &+ UInt32(index * 960), payload: $0, arrivalNanoseconds: 0)
            }
        }
        _ = buffer.play()
        #expect([buffer.play(), buffer.play(), buffer.play()] == [.frame([0]), .frame([1]), .frame([2])])
    }
}
