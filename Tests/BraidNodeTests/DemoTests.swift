import BraidNode
import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// The browser demo page, through the router (no sockets).
@Suite("Demo page")
struct DemoTests {
    let node: NodeServer

    init() throws {
        var logger = Logger(label: "braid.node.test")
        logger.logLevel = .warning
        self.node = try NodeServer(configuration: try testConfiguration(), logger: logger)
    }

    @Test("GET /demo redirects to the lobby")
    func redirect() async throws {
        try await self.node.application.test(.router) { client in
            let response = try await client.execute(uri: "/demo", method: .get)
            #expect(response.status == .seeOther)
            #expect(response.headers[.location] == "/demo/lobby")
        }
    }

    @Test("GET /demo/{room} serves one self-contained HTML page with the room's WHIP and WHEP URLs")
    func page() async throws {
        try await self.node.application.test(.router) { client in
            let response = try await client.execute(uri: "/demo/stage-7", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/html; charset=utf-8")
            let html = String(buffer: response.body)
            #expect(html.hasPrefix("<!doctype html>"))
            #expect(html.contains("\"/whip/stage-7\""))
            #expect(html.contains("\"/whep/stage-7\""))
            #expect(!html.contains("{{ROOM}}"))
            // Simulcast q/h/f listed low to high, pre-allocated recvonly transceivers, automation hooks.
            let q = try #require(html.range(of: #"rid: "q", scaleResolutionDownBy: 4"#))
            let h = try #require(html.range(of: #"rid: "h", scaleResolutionDownBy: 2"#))
            let f = try #require(html.range(of: #"rid: "f", scaleResolutionDownBy: 1"#))
            #expect(q.lowerBound < h.lowerBound && h.lowerBound < f.lowerBound)
            #expect(html.contains(#"addTransceiver("audio", { direction: "recvonly" })"#))
            #expect(html.contains(#"addTransceiver("video", { direction: "recvonly" })"#))
            #expect(html.contains("window.braid"))
            for key in ["framesDecoded", "audioSamplesReceived", "frameWidth", "frameHeight"] {
                #expect(html.contains(key))
            }
            #expect(html.contains(#"query.get("publish") !== "0""#))
            #expect(html.contains(#"query.get("subscribe") !== "0""#))
            #expect(html.contains(#"method: "DELETE""#))
            // Self-contained: no external scripts, styles or fetches.
            #expect(!html.contains("http://") && !html.contains("https://"))
            #expect(!html.contains("<script src") && !html.contains("<link"))
        }
    }

    @Test("an invalid room name → 400")
    func badRoom() async throws {
        try await self.node.application.test(.router) { client in
            let response = try await client.execute(uri: "/demo/%3Cscript%3E", method: .get)
            #expect(response.status == .badRequest)
        }
    }
}
