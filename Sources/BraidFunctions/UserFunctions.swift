import BraidWasm
import Foundation

/// Operators' own functions in WebAssembly (`wasm-audio`, `wasm-video`): a module from the request runs
/// in a ``WasmFunction`` sandbox inside the audio or video pipeline, between decoding and encoding.
///
/// ```
///  wasm-audio: jitter buffer ─▶ Opus decode ─▶ module (braid_process_audio, in place) ─▶ Opus encode
///  wasm-video: VP8 decode ─▶ scale to the output size ─▶ module (braid_process_video, in place) ─▶ VP8 encode
/// ```
///
/// A module that traps, runs out of fuel or memory, or breaks the ABI is stopped for good: the function
/// reports why (`state: "stopped: …"`), its output ends, forwarding and every other function go on.
enum UserFunctions {
    /// Per-frame fuel a request may ask for at most: about 0.1–0.7 s of guest time on this machine
    /// class, so one runaway frame stalls its worker at most that long.
    static let maximumFuel: UInt64 = 300_000_000
    /// Defaults: far above what the examples need (gain ≈ 52,000 a frame, overlay at 720p ≈ 680,000),
    /// short enough that a runaway module is stopped within tens of milliseconds.
    static let defaultAudioFuel: UInt64 = 5_000_000
    static let defaultVideoFuel: UInt64 = 30_000_000

    /// The example modules (Tools/WasmExamples), built into the node so `"module": "gain"` works out of
    /// the box. A test checks that these bytes are the committed .wasm files.
    static let builtIn: [String: String] = [
        "gain": """
            AGFzbQEAAAABFwRgAn9/AGAAAX9gAX8Bf2AEf39/fwF/Ah0CA2VudgZtZW1vcnkCAQGAAgVicmFpZANsb2cAAAMFBAECAgMEBQFw
            AQEBBggBfwFBwIgBCwdNBBFicmFpZF9hYmlfdmVyc2lvbgABEmJyYWlkX2ZyYW1lX2J1ZmZlcgACCmJyYWlkX2luaXQAAxNicmFp
            ZF9wcm9jZXNzX2F1ZGlvAAQK+wIEBABBAQtOAgF/An5BACEBAkAgAEEBSA0AAkAgAK1BwIiBgACtfCICPwCtQhCGIgNYDQAgAiAD
            fUL//wN8QhCIp0AAQX9GDQELQcCIgYAAIQELIAELLAACQCAAQZHOAEkNAEGAiICAAEExEICAgIAAQQEPC0EAIAA2ArSIgIAAQQAL
            9wEBBH8CQCACIAFsIgFBAUgNAEEAKAK0iICAACEEIAFBAXEhBUEAIQICQCABQQFGDQAgAUH+////B3EhBkEAIQIgACEBA0AgASAE
            IAEuAQBsQeQAbSIHQYCAfiAHQYCAfkobIgdB//8BIAdB//8BSBs7AQAgAUECaiIHIAQgBy4BAGxB5ABtIgdBgIB+IAdBgIB+Shsi
            B0H//wEgB0H//wFIGzsBACABQQRqIQEgBiACQQJqIgJHDQALCyAFRQ0AIAAgAkEBdGoiASAEIAEuAQBsQeQAbSIBQYCAfiABQYCA
            fkobIgFB//8BIAFB//8BSBs7AQALQQALC0MCAEGACAsyZ2FpbjogcGFyYW1ldGVyIGlzIHRoZSBnYWluIGluIHBlcmNlbnQsIDAu
            Li4xMDAwMAAAQbQICwRkAAAA
            """,
        "overlay": """
            AGFzbQEAAAABFwRgAn9/AGAAAX9gAX8Bf2AEf39/fwF/Ah0CA2VudgZtZW1vcnkCAQGAAgVicmFpZANsb2cAAAMFBAECAgMEBQFw
            AQEBBggBfwFBwIgBCwdNBBFicmFpZF9hYmlfdmVyc2lvbgABEmJyYWlkX2ZyYW1lX2J1ZmZlcgACCmJyYWlkX2luaXQAAxNicmFp
            ZF9wcm9jZXNzX3ZpZGVvAAQK/QMEBABBAQtOAgF/An5BACEBAkAgAEEBSA0AAkAgAK1BwIiBgACtfCICPwCtQhCGIgNYDQAgAiAD
            fUL//wN8QhCIp0AAQX9GDQELQcCIgYAAIQELIAELOQACQCAADQBBAA8LAkAgAEGUfmpBo35LDQBBgIiAgABBORCAgICAAEEBDwtB
            ACAANgK8iICAAEEAC+wCARJ/AkAgAUEgSA0AIAJBIEgNACACQQN2IgQgAUEobiIFaiIGIAJB4ABuQQEgAkG/AUsbIgdrIQggASAF
            ayIJIAFBBm4iCmsiCyAHaiEMIAkgB2shDSAHIAVqIQ4gACABIAUgAUF/amxqIApraiEPQQAoAryIgIAAIRAgBSERA0AgESAOSSAR
            IAhOciESIA8hEyALIRQDQCAQIRUCQCASIBQgDEhyDQAgECEVIBQgDU4NACATLQAAQQF2QRBqIRULIBMgFToAACATQQFqIRMgFEEB
            aiIUIAlIDQALIA8gAWohDyARQQFqIhEgBkkNAAsgCiACQRhuIhQgB0EBdGprIhNBAEwNACAMIAMgE3BqIgkgFGohFSAEIBRrQQJt
            IAVqIhIgFGohDEEAKAK8iICAACEQA0AgACASIAFsaiETIAkhFANAIBMgFGogEDoAACAUQQFqIhQgFUgNAAsgEkEBaiISIAxIDQAL
            C0EACwtLAgBBgAgLOm92ZXJsYXk6IHBhcmFtZXRlciBpcyB0aGUgYm9yZGVyIGx1bWEsIDE2Li4uMjM1ICgwID0gMjM1KQAAQbwI
            CwTrAAAA
            """,
    ]

    /// The module a request names: a built-in by name, or its own bytes in base64.
    static func module(_ parameters: FunctionRequest.Parameters) throws(FunctionError) -> [UInt8] {
        switch (parameters.module, parameters.moduleBase64) {
        case (let name?, nil):
            guard let encoded = Self.builtIn[name], let bytes = Data(base64Encoded: encoded, options: .ignoreUnknownCharacters)
            else {
                throw FunctionError(
                    .badRequest, "no built-in module \"\(name)\" (built in: \(Self.builtIn.keys.sorted().joined(separator: ", ")))")
            }
            return Array(bytes)
        case (nil, let encoded?):
            guard let bytes = Data(base64Encoded: encoded, options: .ignoreUnknownCharacters), !bytes.isEmpty else {
                throw FunctionError(.badRequest, "module_base64 is not base64")
            }
            return Array(bytes)
        default:
            throw FunctionError(.badRequest, "a wasm function takes one of module (a built-in's name) and module_base64")
        }
    }

    /// Loads the request's module with its limits, checking it handles the kind's media.
    static func load(_ request: FunctionRequest) throws(FunctionError) -> WasmFunction {
        let parameters = request.parameters
        let video = request.kind == .wasmVideo
        let fuel = parameters.fuel ?? (video ? Self.defaultVideoFuel : Self.defaultAudioFuel)
        guard (1_000...Self.maximumFuel).contains(fuel) else {
            throw FunctionError(.badRequest, "fuel must be 1000-\(Self.maximumFuel) per frame, got \(fuel)")
        }
        let pages = parameters.memoryPages ?? 256
        guard (1...1024).contains(pages) else {
            throw FunctionError(.badRequest, "memory_pages must be 1-1024 (64 KiB each), got \(pages)")
        }
        let bytes = try Self.module(parameters)
        let function: WasmFunction
        do {
            function = try WasmFunction(
                module: bytes, limits: WasmLimits(fuelPerFrame: fuel, memoryPages: pages),
                parameter: parameters.parameter ?? 0, log: { _ in })
        } catch {
            throw FunctionError(.badRequest, "the module does not load: \(error)")
        }
        guard video ? function.handlesVideo : function.handlesAudio else {
            throw FunctionError(
                .badRequest, "the module exports no braid_process_\(video ? "video" : "audio") for \(request.kind.rawValue)")
        }
        return function
    }
}
