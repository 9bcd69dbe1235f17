import BraidCluster
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real etcd (Debian's `etcd-server`, `/usr/bin/etcd`) on free loopback ports with a temporary data
/// directory, for one test.
///
/// etcd runs under a small bash watchdog that kills it (and removes the directory) as soon as the test
/// process is gone, so a crashed test run leaves no etcd behind; ``stop()`` ends it normally. Missing etcd
/// is an error, not a skip: CI installs it (`Tools/install-deps.sh`).
final class EtcdProcess: @unchecked Sendable {
    /// `/usr/bin/etcd`, or `$BRAID_ETCD` (another build of etcd).
    static let binary = ProcessInfo.processInfo.environment["BRAID_ETCD"] ?? "/usr/bin/etcd"

    struct NotInstalled: Error, CustomStringConvertible {
        var description: String {
            "etcd is not installed at \(EtcdProcess.binary): run Tools/install-deps.sh (Debian package etcd-server); "
                + "the cluster tests need a real etcd and are not skipped without one"
        }
    }

    struct StartFailed: Error, CustomStringConvertible {
        var description: String
    }

    let directory: URL
    private(set) var clientPort: Int
    private(set) var peerPort: Int
    var url: String { "http://127.0.0.1:\(self.clientPort)" }
    private var watchdog: Process?

    /// Starts etcd and waits until `/health` says true.
    init() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else { throw NotInstalled() }
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("braid-etcd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        let ports = try freePorts(2)
        (self.clientPort, self.peerPort) = (ports[0], ports[1])
        // Tests run in parallel: another test may pick the same free port before etcd binds it. Then
        // etcd cannot listen, and a new pair of ports is tried.
        var attempt = 1
        while true {
            do {
                try await self.start()
                return
            } catch let error as StartFailed where error.description.contains("address already in use") && attempt < 4 {
                await self.kill()
                let ports = try freePorts(2)
                (self.clientPort, self.peerPort) = (ports[0], ports[1])
                try? FileManager.default.removeItem(at: self.directory.appendingPathComponent("data"))
                try? FileManager.default.removeItem(at: self.directory.appendingPathComponent("etcd.log"))
                attempt += 1
            } catch {
                await self.stop()
                throw error
            }
        }
    }

    /// Starts etcd (again) on the same ports and data directory.
    func start() async throws {
        let peer = "http://127.0.0.1:\(self.peerPort)"
        let arguments = [
            Self.binary, "--name", "braid-test", "--data-dir", self.directory.appendingPathComponent("data").path,
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "braid-test=\(peer)", "--log-level", "warn",
        ]
        // bash reaps the background child as soon as it dies, so `kill -0` stops succeeding then.
        let script = """
            "$@" >>"$BRAID_DIR/etcd.log" 2>&1 &
            child=$!
            echo $child >"$BRAID_DIR/etcd.pid"
            while kill -0 "$BRAID_TEST_PID" 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.2; done
            kill -9 $child 2>/dev/null
            kill -0 "$BRAID_TEST_PID" 2>/dev/null || rm -rf "$BRAID_DIR"
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script, "etcd-watchdog"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["BRAID_DIR"] = self.directory.path
        environment["BRAID_TEST_PID"] = String(getpid())
        process.environment = environment
        // bash reports its killed child ("Killed …") on stderr: expected here, not worth showing.
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try? FileManager.default.removeItem(at: self.pidFile)
        try process.run()
        self.watchdog = process

        let probe = EtcdClient(endpoints: [self.url], connectTimeout: .milliseconds(200), requestTimeout: .milliseconds(500))
        let deadline = ContinuousClock.now + .seconds(15)
        var healthy = false
        while ContinuousClock.now < deadline {
            if await probe.isHealthy() {
                healthy = true
                break
            }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        await probe.shutdown()
        guard healthy else {
            let log = (try? String(contentsOf: self.directory.appendingPathComponent("etcd.log"), encoding: .utf8)) ?? ""
            throw StartFailed(description: "etcd did not become healthy at \(self.url):\n\(log.suffix(2000))")
        }
    }

    private var pidFile: URL { self.directory.appendingPathComponent("etcd.pid") }

    private var pid: pid_t? {
        (try? String(contentsOf: self.pidFile, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Kills etcd with `signal` (SIGKILL: a crash) and waits until it is gone. The data stays.
    func kill(signal: Int32 = SIGKILL) async {
        guard let watchdog = self.watchdog else { return }
        if let pid = self.pid {
            Glibc.kill(pid, signal)
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while watchdog.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if watchdog.isRunning, let pid = self.pid {
            Glibc.kill(pid, SIGKILL)
            while watchdog.isRunning {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        self.watchdog = nil
    }

    /// Stops etcd and removes its directory.
    func stop() async {
        await self.kill(signal: SIGTERM)
        try? FileManager.default.removeItem(at: self.directory)
    }
}

/// Runs `body` with a fresh etcd, stopping it and removing its data whatever happens.
func withEtcd<T>(_ body: (EtcdProcess) async throws -> T) async throws -> T {
    let etcd = try await EtcdProcess()
    do {
        let result = try await body(etcd)
        await etcd.stop()
        return result
    } catch {
        await etcd.stop()
        throw error
    }
}

/// `count` TCP ports free on 127.0.0.1 right now (bound to port 0, then released).
func freePorts(_ count: Int) throws -> [Int] {
    let reserved = try ReservedPorts(count)
    reserved.release()
    return reserved.ports
}

/// TCP ports on 127.0.0.1 bound without listening: connecting to them is refused, and no other test can
/// take them until ``release()``. URLs of an etcd that is not there.
final class ReservedPorts: @unchecked Sendable {
    let ports: [Int]
    private var sockets: [Int32]

    init(_ count: Int) throws {
        (self.sockets, self.ports) = try bindPorts(count)
    }

    func release() {
        self.sockets.forEach { close($0) }
        self.sockets = []
    }

    deinit { self.release() }
}

private func bindPorts(_ count: Int) throws -> ([Int32], [Int]) {
    var sockets: [Int32] = []
    var ports: [Int] = []
    for _ in 0..<count {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else {
            sockets.forEach { close($0) }
            throw POSIXError(.EMFILE)
        }
        sockets.append(fd)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else {
            sockets.forEach { close($0) }
            throw POSIXError(.EADDRINUSE)
        }
        ports.append(Int(UInt16(bigEndian: address.sin_port)))
    }
    return (sockets, ports)
}
