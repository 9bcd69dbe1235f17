import BraidRTPStreams
import BraidWire
import NIOCore
import Testing

/// One forwarded packet as the subscriber sees it.
private struct Output: Equatable {
    var ssrc: UInt32
    var sequenceNumber: UInt16
    var timestamp: UInt32
    var pictureID: UInt16?
    var tl0: UInt8?
}

private func forward(
    _ rewriter: inout RTPRewriter, _ packet: RTPPacket, now: NIODeadline
) throws -> Output? {
    var packet = packet
    guard try rewriter.rewrite(packet: &packet, now: now) == .forward else { return nil }
    let descriptor = rewriter.rewritesVP8 ? try VP8PayloadDescriptor(packet.payload) : nil
    return Output(
        ssrc: packet.ssrc, sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp,
        pictureID: descriptor?.pictureID?.value, tl0: descriptor?.tl0PicIndex)
}

@Suite struct RTPRewriterTests {
    @Test func layerSwitchKeepsEverythingContinuous() throws {
        var rewriter = RTPRewriter(outputSSRC: 0xC0C0_C0C0, clockRate: 90000, rewritesVP8: true)
        var outputs: [Output] = []
        // Source A (low layer): one packet per frame, 30 fps, 15-bit PictureIDs; sequence wraps.
        for frame in 0..<5 {
            let packet = try makePacket(
                sequenceNumber: 65533 &+ UInt16(frame), timestamp: 90000 + UInt32(frame) * 3000, ssrc: 0xA,
                payload: try vp8Payload(pictureID: (32766 &+ UInt16(frame)) & 0x7FFF, tl0: 254 &+ UInt8(frame)))
            outputs.append(try #require(try forward(&rewriter, packet, now: at(Int64(frame) * 33))))
        }
        // Switch to source B (high layer) at its keyframe, 33 ms after A's last packet; then B continues.
        for frame in 0..<5 {
            let packet = try makePacket(
                sequenceNumber: 5000 + UInt16(frame), timestamp: 777 + UInt32(frame) * 3000, ssrc: 0xB,
                payload: try vp8Payload(pictureID: 9 + UInt16(frame), tl0: 40 + UInt8(frame)))
            outputs.append(try #require(try forward(&rewriter, packet, now: at(165 + Int64(frame) * 33))))
        }
        #expect(outputs.allSatisfy { $0.ssrc == 0xC0C0_C0C0 })
        for (previous, next) in zip(outputs, outputs.dropFirst()) {
            #expect(next.sequenceNumber == previous.sequenceNumber &+ 1)
            #expect(Int32(bitPattern: next.timestamp &- previous.timestamp) > 0)
            #expect(next.pictureID == (previous.pictureID! + 1) & 0x7FFF)
            #expect(next.tl0 == previous.tl0! &+ 1)
        }
        // Source A passes through unchanged; B's first timestamp is A's last + 33 ms × 90 kHz.
        #expect(
            outputs[0]
                == Output(ssrc: 0xC0C0_C0C0, sequenceNumber: 65533, timestamp: 90000, pictureID: 32766, tl0: 254))
        #expect(outputs[5].timestamp == outputs[4].timestamp + 2970)
        #expect(outputs[6].timestamp == outputs[5].timestamp + 3000)
        #expect(rewriter.sourceChanges == 2)
    }

    @Test func shortPictureIDsStayContinuousModulo128() throws {
        var rewriter = RTPRewriter(outputSSRC: 1, clockRate: 90000, rewritesVP8: true)
        var ids: [UInt16] = []
        let inputs: [(UInt32, UInt16)] = [(0xA, 126), (0xA, 127), (0xA, 0), (0xB, 50), (0xB, 51)]
        for (index, (ssrc, id)) in inputs.enumerated() {
            let packet = try makePacket(
                sequenceNumber: UInt16(index), timestamp: UInt32(index), ssrc: ssrc,
                payload: try vp8Payload(pictureID: id, tl0: 0, longPictureID: false))
            ids.append(try #require(try forward(&rewriter, packet, now: at(Int64(index)))).pictureID!)
        }
        #expect(ids == [126, 127, 0, 1, 2])
    }

    @Test func incompleteFrameBeforeSwitchLeavesOneGap() throws {
        var rewriter = RTPRewriter(outputSSRC: 1, clockRate: 90000)
        let a = try forward(&rewriter, try makePacket(sequenceNumber: 100, ssrc: 0xA, marker: false), now: at(0))
        let b = try forward(&rewriter, try makePacket(sequenceNumber: 9, ssrc: 0xB), now: at(10))
        #expect(b!.sequenceNumber == a!.sequenceNumber + 2)
    }

    @Test func dropsLeaveNoGap() throws {
        var rewriter = RTPRewriter(outputSSRC: 7, clockRate: 90000)
        var sequenceNumbers: [UInt16] = []
        for sequence: UInt16 in 10...20 {
            if sequence == 13 || sequence == 14 || sequence == 18 {
                rewriter.drop(sequenceNumber: sequence)
            } else {
                let output = try forward(&rewriter, try makePacket(sequenceNumber: sequence), now: at(0))
                sequenceNumbers.append(try #require(output).sequenceNumber)
            }
        }
        #expect(sequenceNumbers == Array(10...17))
        #expect(rewriter.packetsDropped == 3)
    }

    @Test func insertedPacketsTakeTheNextNumbersAndLatePacketsKeepTheirOwn() throws {
        var rewriter = RTPRewriter(outputSSRC: 7, clockRate: 48000)
        let none = rewriter.insert()
        #expect(none == nil)  // nothing forwarded yet
        var outputs: [UInt16] = []
        for sequence: UInt16 in [100, 102] {  // 101 comes late
            outputs.append(try #require(try forward(&rewriter, try makePacket(sequenceNumber: sequence, timestamp: 960), now: at(0))).sequenceNumber)
        }
        let inserted = [rewriter.insert(), rewriter.insert()]
        let repeat1 = try #require(inserted[0])
        let repeat2 = try #require(inserted[1])
        #expect(repeat1.sequenceNumber == 103 && repeat2.sequenceNumber == 104)
        #expect(repeat1.timestamp == 960)
        // The next packet follows the inserted ones; the late one takes the number left for it.
        outputs.append(try #require(try forward(&rewriter, try makePacket(sequenceNumber: 103), now: at(20))).sequenceNumber)
        outputs.append(try #require(try forward(&rewriter, try makePacket(sequenceNumber: 101), now: at(21))).sequenceNumber)
        #expect(outputs == [100, 102, 105, 101])
        #expect(try forward(&rewriter, try makePacket(sequenceNumber: 99), now: at(21)) == nil)  // before the source
    }

    @Test func aLatePacketOlderThanTheRememberedRenumberingsIsDiscarded() throws {
        var rewriter = RTPRewriter(outputSSRC: 7, clockRate: 90000)
        _ = try forward(&rewriter, try makePacket(sequenceNumber: 1), now: at(0))
        var outputs: Set<UInt16> = [1]
        for sequence: UInt16 in 3...80 {  // 2 comes late; an insert after every packet
            outputs.insert(try #require(try forward(&rewriter, try makePacket(sequenceNumber: sequence), now: at(0))).sequenceNumber)
            let inserted = rewriter.insert()
            outputs.insert(try #require(inserted).sequenceNumber)
        }
        #expect(outputs.count == 1 + 2 * 78)
        // Its place was forgotten 64 renumberings ago: a number for it could collide, so none is given.
        #expect(try forward(&rewriter, try makePacket(sequenceNumber: 2), now: at(1)) == nil)
        // One within the memory still gets the number kept for it.
        var late = RTPRewriter(outputSSRC: 7, clockRate: 90000)
        _ = try forward(&late, try makePacket(sequenceNumber: 1), now: at(0))
        for sequence: UInt16 in 3...10 {
            _ = try forward(&late, try makePacket(sequenceNumber: sequence), now: at(0))
            _ = late.insert()
        }
        #expect(try forward(&late, try makePacket(sequenceNumber: 2), now: at(1))?.sequenceNumber == 2)
    }

    @Test func packetReorderedAroundADropKeepsItsNumber() throws {
        var rewriter = RTPRewriter(outputSSRC: 7, clockRate: 90000)
        var out: [UInt16] = []
        out.append(try forward(&rewriter, try makePacket(sequenceNumber: 1), now: at(0))!.sequenceNumber)
        out.append(try forward(&rewriter, try makePacket(sequenceNumber: 2), now: at(0))!.sequenceNumber)
        rewriter.drop(sequenceNumber: 4)
        out.append(try forward(&rewriter, try makePacket(sequenceNumber: 3), now: at(0))!.sequenceNumber)  // late
        out.append(try forward(&rewriter, try makePacket(sequenceNumber: 5), now: at(0))!.sequenceNumber)
        #expect(out == [1, 2, 3, 4])
    }

    @Test func stalePacketOfNewSourceIsDiscarded() throws {
        var rewriter = RTPRewriter(outputSSRC: 7, clockRate: 90000)
        _ = try forward(&rewriter, try makePacket(sequenceNumber: 100, ssrc: 0xA), now: at(0))
        _ = try forward(&rewriter, try makePacket(sequenceNumber: 500, ssrc: 0xB), now: at(1))
        #expect(try forward(&rewriter, try makePacket(sequenceNumber: 499, ssrc: 0xB), now: at(2)) == nil)
        let next = try forward(&rewriter, try makePacket(sequenceNumber: 501, ssrc: 0xB), now: at(3))
        #expect(next?.sequenceNumber == 102)
    }

    @Test func publisherRestartWithSameSSRC() throws {
        var rewriter = RTPRewriter(outputSSRC: 7, clockRate: 48000)
        let first = try forward(&rewriter, try makePacket(sequenceNumber: 40000, timestamp: 5_000_000), now: at(0))!
        rewriter.markSourceChange()
        let next = try forward(&rewriter, try makePacket(sequenceNumber: 3, timestamp: 12), now: at(20))!
        #expect(next.sequenceNumber == first.sequenceNumber + 1)
        #expect(next.timestamp == first.timestamp + 960)  // 20 ms at 48 kHz
    }

    @Test func switchWithNoElapsedTimeStillAdvancesTimestamp() throws {
        var rewriter = RTPRewriter(outputSSRC: 7, clockRate: 90000)
        let a = try forward(&rewriter, try makePacket(sequenceNumber: 1, timestamp: 100, ssrc: 0xA), now: at(0))!
        let b = try forward(&rewriter, try makePacket(sequenceNumber: 1, timestamp: 100, ssrc: 0xB), now: at(0))!
        #expect(b.timestamp == a.timestamp + 1)
    }

    @Test func malformedVP8PayloadThrowsAndChangesNothing() throws {
        var rewriter = RTPRewriter(outputSSRC: 7, clockRate: 90000, rewritesVP8: true)
        let good = try makePacket(sequenceNumber: 1, payload: try vp8Payload(pictureID: 5, tl0: 1))
        let first = try forward(&rewriter, good, now: at(0))!
        // X and I bits set, PictureID byte missing.
        var bad = try makePacket(sequenceNumber: 2, payload: [0x90, 0x80])
        let before = bytes(bad.bytes)
        #expect(throws: WireError.self) { try rewriter.rewrite(packet: &bad, now: at(1)) }
        #expect(bytes(bad.bytes) == before)
        rewriter.drop(sequenceNumber: 2)
        let next = try forward(
            &rewriter, try makePacket(sequenceNumber: 3, payload: try vp8Payload(pictureID: 6, tl0: 1)), now: at(2))!
        #expect(next.sequenceNumber == first.sequenceNumber + 1)
        #expect(next.pictureID == 6)
    }
}
