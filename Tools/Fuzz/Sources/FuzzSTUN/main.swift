// Placeholder fuzz entry point; its parser's owner fills it in.
import BraidWire

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    _ = DatagramKind(classifying: bytes)
    return 0
}
