import HTTPTypes
import Hummingbird
import NIOCore

/// The browser demo: `GET /demo/{room}` serves one self-contained page (``DemoPage``) that publishes the
/// camera and microphone to the room by WHIP and plays the room by WHEP; `GET /demo` redirects to
/// `/demo/lobby`.
///
/// Query options of the page, for automation: `?publish=0` (only play), `?subscribe=0` (only publish),
/// `?token=<bearer>` (sent as `Authorization: Bearer` on every signalling request), `?view=mix,composite`
/// (play the room's audio-mix and composite edge functions, started if need be, instead of every track).
public enum DemoRoutes {
    /// The room `GET /demo` redirects to.
    public static let defaultRoom = "lobby"

    /// Adds `GET /demo` and `GET /demo/{room}` to `router`.
    public static func register(on router: Router<NodeRequestContext>) {
        router.get("/demo") { _, _ in
            Response(status: .seeOther, headers: [.location: "/demo/\(Self.defaultRoom)"])
        }
        router.get("/demo/:room") { _, context in
            let room = context.parameters.get("room") ?? ""
            // The page embeds the room: only names WebRTCRoutes accepts (letters, digits, '-', '_', '.').
            guard WebRTCRoutes.isValidRoom(room) else {
                return Response(
                    status: .badRequest,
                    headers: [.contentType: "text/plain; charset=utf-8"],
                    body: ResponseBody(byteBuffer: ByteBuffer(string: "invalid room name\n"))
                )
            }
            return Response(
                status: .ok,
                headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: DemoPage.html(room: room)))
            )
        }
    }
}
