// libFuzzer target for the codec payload parsers: the VP8 payload descriptor (with its builder and
// in-place rewriter) and the Opus TOC / packet checks, which have no target of their own.
//
// A VP8 payload that parses must rebuild into the same descriptor, and rewriting its PictureID and
// TL0PICIDX must change exactly those fields. A mismatch calls fatalError, which libFuzzer reports.
import BraidWire
import NIOCore

private func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

private func fuzzVP8(_ input: ByteBuffer) {
    let vp8: VP8Payload
    do {
        vp8 = try VP8Payload(input)
    } catch {
        check(error.code == .truncated, "unexpected VP8 error \(error)")
        return
    }
    let descriptor = vp8.descriptor
    check(vp8.descriptorLength + vp8.data.readableBytes == input.readableBytes, "lengths do not add up")
    check((1...6).contains(vp8.descriptorLength), "descriptor length \(vp8.descriptorLength)")
    check(!vp8.isKeyFrame || vp8.isStartOfFrame, "key frame that does not start a frame")
    _ = (descriptor.isNonReference, descriptor.pictureID?.value, descriptor.keyIndex, descriptor.isLayerSync)

    // Rebuild: the same fields, and the same size unless the sender set X with no optional field.
    var output = ByteBuffer()
    do {
        let written = try descriptor.write(into: &output)
        check(written == descriptor.encodedLength, "encodedLength \(descriptor.encodedLength) != written \(written)")
        check(
            written == vp8.descriptorLength || (vp8.descriptorLength == 2 && written == 1),
            "rebuilt descriptor is \(written) bytes, parsed one \(vp8.descriptorLength)")
        output.writeImmutableBuffer(vp8.data)
        let rebuilt = try VP8Payload(output)
        check(rebuilt.descriptor == descriptor, "rebuilt descriptor \(rebuilt.descriptor) != \(descriptor)")
        check(rebuilt.isKeyFrame == vp8.isKeyFrame, "key frame flag changed")
        check(Array(rebuilt.data.readableBytesView) == Array(vp8.data.readableBytesView), "VP8 data changed")
    } catch {
        fatalError("a parsed descriptor failed to rebuild: \(error)")
    }

    // Rewrite a private copy in place.
    var copy = ByteBuffer()
    copy.writeImmutableBuffer(input)
    let newPictureID: UInt16 = (descriptor.pictureID?.value ?? 0) &+ 1
    let newTL0: UInt8 = (descriptor.tl0PicIndex ?? 0) &+ 1
    do {
        try VP8PayloadDescriptor.rewrite(
            pictureID: descriptor.pictureID == nil ? nil : newPictureID,
            tl0PicIndex: descriptor.tl0PicIndex == nil ? nil : newTL0, in: &copy, at: copy.readerIndex)
        let rewritten = try VP8Payload(copy)
        var expected = descriptor
        expected.pictureID = descriptor.pictureID?.withValue(newPictureID)
        expected.tl0PicIndex = descriptor.tl0PicIndex == nil ? nil : newTL0
        check(rewritten.descriptor == expected, "rewrite gave \(rewritten.descriptor), expected \(expected)")
        check(Array(rewritten.data.readableBytesView) == Array(vp8.data.readableBytesView), "rewrite touched data")
    } catch {
        fatalError("rewriting a valid descriptor failed: \(error)")
    }
    // Asking for a field the descriptor lacks is a typed error, never a write.
    if descriptor.pictureID == nil {
        var untouched = ByteBuffer()
        untouched.writeImmutableBuffer(input)
        do {
            try VP8PayloadDescriptor.rewrite(pictureID: 1, in: &untouched, at: untouched.readerIndex)
            fatalError("rewrote a PictureID the descriptor does not carry")
        } catch {
            check(error.code == .badValue, "unexpected rewrite error \(error)")
            check(untouched == input, "a refused rewrite changed the bytes")
        }
    }
}

private func fuzzOpus(_ input: ByteBuffer) {
    guard let info = try? OpusPacketInfo(input) else { return }
    check((1...48).contains(info.frameCount), "Opus frame count \(info.frameCount)")
    check(info.durationSamples <= 5760, "Opus packet over 120 ms")
    check(info.paddingLength < input.readableBytes, "Opus padding larger than the packet")
    let toc = info.toc
    _ = (toc.mode, toc.bandwidth, toc.isStereo, toc.configuration)
    check([120, 240, 480, 960, 1920, 2880].contains(toc.samplesPerFrame), "frame size \(toc.samplesPerFrame)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let start, count >= 0 else { return 0 }
    let input = ByteBuffer(bytes: UnsafeRawBufferPointer(start: start, count: count))
    fuzzVP8(input)
    fuzzOpus(input)
    return 0
}
