import Benchmark
import BraidWire

let benchmarks: @Sendable () -> Void = {}
