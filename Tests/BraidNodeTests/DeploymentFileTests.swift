import BraidNode
import Foundation
import Testing

/// The deployment files in `Tools/deploy` (systemd unit, Containerfile, Kubernetes manifests), checked
/// offline: no systemd, container engine or cluster is needed. Each file is parsed (INI sections,
/// Dockerfile instructions, a YAML subset) and held against the node's real options: every `BRAID_*`
/// variable and every flag passed to `braid-node` must be one the node knows, every embedded config file
/// must decode strictly, and each setup must resolve to a valid configuration whose ports, state directory
/// and drain timeout agree with what the files around it assume.
@Suite("Deployment files")
struct DeploymentFileTests {
    static let deployDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Tools/deploy")

    static func text(_ relativePath: String) throws -> String {
        try String(contentsOf: Self.deployDirectory.appendingPathComponent(relativePath), encoding: .utf8)
    }

    /// Every environment variable the node reads.
    static let knownVariables = Set(
        ConfigurationKey.allCases.map(\.environmentVariable) + [configFileEnvironmentVariable])
    /// Every long flag `braid-node` takes, without dashes.
    static let knownFlags = Set(ConfigurationKey.allCases.map(\.flagName) + ["config", "print-config"])

    /// The `--flag` names (without dashes and `=value`) among a command's arguments.
    static func flags(in arguments: [String]) -> [String] {
        arguments.filter { $0.hasPrefix("--") }.map { String($0.dropFirst(2).prefix { $0 != "=" }) }
    }

    /// The value after `--name` (or in `--name=value`).
    static func flagValue(_ name: String, in arguments: [String]) -> String? {
        for (index, argument) in arguments.enumerated() {
            if argument == "--" + name, index + 1 < arguments.count { return arguments[index + 1] }
            if argument.hasPrefix("--\(name)=") { return String(argument.dropFirst(name.count + 3)) }
        }
        return nil
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("braid-deploy-test-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    // MARK: - Every variable and flag is a real option

    @Test("every BRAID_* variable in Tools/deploy is one the node reads")
    func variablesAreOptions() throws {
        let root = Self.deployDirectory
        let files = try FileManager.default.subpathsOfDirectory(atPath: root.path)
            .filter { !$0.hasPrefix(".") }.sorted()
        #expect(files.contains("braid-node.service") && files.contains("Containerfile"))
        var seen: Set<String> = []
        for file in files {
            var isDirectory: ObjCBool = false
            let path = root.appendingPathComponent(file).path
            _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            if isDirectory.boolValue { continue }
            let text = try Self.text(file)
            for match in text.matches(of: #/BRAID_[A-Z0-9_]+/#) {
                let name = String(match.output)
                seen.insert(name)
                #expect(Self.knownVariables.contains(name), "\(file): \(name) is not a braid-node option")
            }
        }
        // The files do use the new settings, not only the old ones.
        for key in [ConfigurationKey.mediaAdvertisedAddresses, .authTokenKeyFile, .stateDirectory] {
            #expect(seen.contains(key.environmentVariable), "\(key.environmentVariable) unused")
        }
    }

    @Test("every flag passed to braid-node is one it takes")
    func flagsAreOptions() throws {
        var commands: [(String, [String])] = []
        let unit = try SystemdUnit(parsing: Self.text("braid-node.service"))
        for line in unit.values("Service", "ExecStart") { commands.append(("ExecStart", Self.words(line))) }
        let containerfile = try Containerfile(parsing: Self.text("Containerfile"))
        let entrypoint = (containerfile.last("ENTRYPOINT")?.words ?? []) + (containerfile.last("CMD")?.words ?? [])
        commands.append(("ENTRYPOINT + CMD", entrypoint))
        let daemonSet = try Self.kubernetesObject(kind: "DaemonSet")
        for container in daemonSet.value("spec", "template", "spec", "containers")?.list ?? [] {
            let command = (container["command"]?.list ?? []) + (container["args"]?.list ?? [])
            commands.append(("container \(container["name"]?.string ?? "?")", command.compactMap(\.string)))
        }
        var flagCount = 0
        for (source, words) in commands {
            for flag in Self.flags(in: words) {
                flagCount += 1
                #expect(Self.knownFlags.contains(flag), "\(source): --\(flag) is not a braid-node flag")
            }
        }
        #expect(flagCount >= 2)
    }

    // MARK: - systemd

    @Test("the systemd unit: sections, hardening, braid-node, stop after the drain")
    func systemdUnit() throws {
        let unit = try SystemdUnit(parsing: Self.text("braid-node.service"))
        #expect(unit.sections.keys.sorted() == ["Install", "Service", "Unit"])
        #expect(unit.value("Install", "WantedBy") == "multi-user.target")
        #expect(unit.value("Unit", "After")?.contains("network-online.target") == true)

        let execStart = Self.words(try #require(unit.value("Service", "ExecStart")))
        #expect(execStart.first == "/usr/local/bin/braid-node")
        #expect(Self.flagValue("config", in: execStart) == "/etc/braid/node.json")
        #expect(unit.values("Service", "EnvironmentFile").contains("-/etc/braid/node.env"))
        #expect(unit.value("Service", "KillSignal") == "SIGTERM")
        #expect(unit.value("Service", "Restart") == "on-failure")

        let hardening: [String: String] = [
            "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
            "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
            "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "StateDirectory": "braid",
        ]
        for (key, value) in hardening.sorted(by: { $0.key < $1.key }) {
            #expect(unit.value("Service", key) == value, "\(key)")
        }
        // Empty: no capabilities at all.
        #expect(unit.values("Service", "CapabilityBoundingSet") == [""])
        #expect(unit.value("Service", "DynamicUser") == "yes" || (unit.value("Service", "User") ?? "root") != "root")
        let families = Set(unit.values("Service", "RestrictAddressFamilies").flatMap { Self.words($0) })
        #expect(families == ["AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"])
        #expect(unit.values("Service", "SystemCallFilter").contains("@system-service"))
        let openFiles = try #require(unit.value("Service", "LimitNOFILE"))
        #expect((Int(openFiles) ?? 0) >= 65536)

        // The stop timeout outlasts the drain, with the unit's own environment and config file.
        let stopTimeoutText = try #require(unit.value("Service", "TimeoutStopSec"))
        let stopTimeout = try #require(SystemdUnit.seconds(stopTimeoutText))
        let configuration = try Self.resolveSystemdSetup(unit)
        #expect(stopTimeout > Double(configuration.drainTimeoutSeconds))
        #expect(stopTimeout > Double(NodeConfiguration.defaultDrainTimeoutSeconds))
        // The node keeps its state where systemd gives the dynamic user a writable directory.
        #expect(configuration.stateDirectory == "/var/lib/braid")
        #expect(configuration.http.address == "0.0.0.0" && configuration.media.advertisedAddresses == ["203.0.113.10"])
        #expect(NodeConfiguration.isLoopback(configuration.admin.address))
    }

    @Test("the unit's token key is a credential it loads")
    func systemdCredentials() throws {
        let unit = try SystemdUnit(parsing: Self.text("braid-node.service"))
        let environment = Self.assignments(unit.values("Service", "Environment"))
        let keyFile = try #require(environment[ConfigurationKey.authTokenKeyFile.environmentVariable])
        #expect(keyFile.hasPrefix("%d/"), "the key file is in the credentials directory")
        let credentials = unit.values("Service", "LoadCredential")
            .map { $0.split(separator: ":").first.map(String.init) }
        #expect(credentials.contains(String(keyFile.dropFirst(3))))
    }

    @Test("node.env.example: every line, commented or not, parses as the node's environment")
    func environmentExample() throws {
        let lines = try Self.environmentLines(Self.text("node.env.example"), includingCommented: true)
        #expect(lines.count >= 5)
        for (name, value) in lines {
            do {
                _ = try NodeConfigurationLayer(environment: [name: value])
            } catch {
                Issue.record("\(name)=\(value): \(error)")
            }
        }
    }

    /// The configuration a node started by the unit gets: node.json, the unit's `Environment=`, then the
    /// example node.env (uncommented lines); `%d` (the credentials directory) holds a token key.
    static func resolveSystemdSetup(_ unit: SystemdUnit) throws -> NodeConfiguration {
        let credentials = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: credentials) }
        try Data(String(repeating: "k", count: 48).utf8).write(to: credentials.appendingPathComponent("token-key"))
        var environment = Self.assignments(unit.values("Service", "Environment"))
        for (name, value) in try Self.environmentLines(Self.text("node.env.example"), includingCommented: false) {
            environment[name] = value
        }
        environment = environment.mapValues { $0.replacing("%d", with: credentials.path) }
        let execStart = Self.words(try #require(unit.value("Service", "ExecStart")))
        // The unit's --config file is the one the repository ships (installed under /etc/braid).
        let installed = try #require(Self.flagValue("config", in: execStart))
        let shipped = Self.deployDirectory.appendingPathComponent(URL(fileURLWithPath: installed).lastPathComponent)
        _ = try NodeConfigurationLayer(json: Data(contentsOf: shipped), sourceName: "Tools/deploy/node.json")
        return try NodeConfiguration.resolve(
            environment: environment, configFile: shipped.path, hostName: "deploy-test")
    }

    // MARK: - Containerfile

    @Test("the Containerfile: runtime image, non-root, node's ports, health check, SIGTERM")
    func containerfile() throws {
        let file = try Containerfile(parsing: Self.text("Containerfile"))
        #expect(file.all("FROM").last?.arguments == "debian:bookworm-slim")

        let install = file.all("RUN").map(\.arguments).first { $0.contains("apt-get install") } ?? ""
        for package in ["libsrtp2-1", "libopus0", "libvpx7", "libssl3", "ca-certificates"] {
            #expect(install.split(separator: " ").contains(Substring(package)), "\(package) not installed")
        }
        #expect(file.all("COPY").contains { $0.words.last == "/usr/local/bin/braid-node" })
        #expect(file.last("ENTRYPOINT")?.words.first == "/usr/local/bin/braid-node")

        let user = try #require(file.last("USER")?.arguments.split(separator: ":").first.map(String.init))
        #expect(user != "root" && user != "0")
        if let uid = Int(user) {
            #expect(file.all("RUN").contains { $0.arguments.contains("--uid \(uid)") }, "no user with uid \(uid)")
        }

        let exposed = Set(file.all("EXPOSE").flatMap(\.words).map { $0.contains("/") ? $0.lowercased() : "\($0)/tcp" })
        #expect(
            exposed == [
                "\(NodeConfiguration.defaultHTTPPort)/tcp", "\(NodeConfiguration.defaultMediaPort)/udp",
                "\(NodeConfiguration.defaultMeshPort)/udp",
            ])

        let healthCheck = try #require(file.last("HEALTHCHECK")?.arguments)
        #expect(healthCheck.contains(" CMD ") || healthCheck.hasPrefix("CMD "))
        #expect(healthCheck.contains(":\(NodeConfiguration.defaultHTTPPort)/healthz"))
        #expect(file.last("STOPSIGNAL")?.arguments == "SIGTERM")

        // The image's environment is a valid node environment; its state directory is a volume.
        let environment = file.environment
        for name in environment.keys { #expect(Self.knownVariables.contains(name), "ENV \(name)") }
        let state = try #require(environment[ConfigurationKey.stateDirectory.environmentVariable])
        #expect(file.all("VOLUME").flatMap(\.words).contains(state))
        #expect(environment[ConfigurationKey.httpAddress.environmentVariable] == "0.0.0.0")
        // With only the image's environment the node must be told where clients reach it: a wildcard
        // media address without an advertised one is refused, so the image cannot start half-configured.
        #expect(throws: ConfigurationError.self) {
            _ = try NodeConfiguration.resolve(environment: environment, hostName: "deploy-test")
        }
        var runEnvironment = environment
        runEnvironment[ConfigurationKey.mediaAdvertisedAddresses.environmentVariable] = "203.0.113.10"
        let configuration = try NodeConfiguration.resolve(environment: runEnvironment, hostName: "deploy-test")
        #expect(configuration.http.port == NodeConfiguration.defaultHTTPPort)
    }

    // MARK: - Kubernetes

    static func kubernetesDocuments() throws -> [(file: String, object: YAML)] {
        let directory = Self.deployDirectory.appendingPathComponent("kubernetes")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".yaml.example") }.sorted()
        var documents: [(file: String, object: YAML)] = []
        for file in files {
            for object in try YAMLReader.documents(in: Self.text("kubernetes/" + file)) {
                documents.append((file: file, object: object))
            }
        }
        return documents
    }

    static func kubernetesObject(kind: String) throws -> YAML {
        let documents = try Self.kubernetesDocuments()
        return try #require(documents.first { $0.object["kind"]?.string == kind }?.object, "no \(kind)")
    }

    /// The ConfigMap's node.json and the DaemonSet's environment (downward-API fields given sample values,
    /// beneath it the image's `ENV`), resolved as the node in the pod would.
    static func resolveKubernetesSetup() throws -> NodeConfiguration {
        let configMap = try Self.kubernetesObject(kind: "ConfigMap")
        let json = try #require(configMap.value("data", "node.json")?.string)
        _ = try NodeConfigurationLayer(json: Data(json.utf8), sourceName: "ConfigMap node.json")
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("node.json")
        try Data(json.utf8).write(to: file)

        var environment = try Containerfile(parsing: Self.text("Containerfile")).environment
        let daemonSet = try Self.kubernetesObject(kind: "DaemonSet")
        let container = try #require(daemonSet.value("spec", "template", "spec", "containers", 0))
        let downward = ["status.hostIP": "192.0.2.10", "spec.nodeName": "worker-1", "status.podIP": "192.0.2.10"]
        for variable in container["env"]?.list ?? [] {
            let name = try #require(variable["name"]?.string)
            if let value = variable["value"]?.string {
                environment[name] = value
            } else {
                let field = try #require(variable.value("valueFrom", "fieldRef", "fieldPath")?.string, "\(name)")
                guard let sample = downward[field] else {
                    Issue.record("\(name): no sample value for the downward-API field \(field)")
                    continue
                }
                environment[name] = sample
            }
        }
        return try NodeConfiguration.resolve(environment: environment, configFile: file.path, hostName: "deploy-test")
    }

    @Test("Kubernetes manifests: well formed, one namespace, the ConfigMap decodes strictly")
    func kubernetesManifests() throws {
        let documents = try Self.kubernetesDocuments()
        let kinds = Set(documents.compactMap { $0.object["kind"]?.string })
        #expect(kinds.isSuperset(of: ["Namespace", "ConfigMap", "Secret", "DaemonSet", "Service"]))
        let namespaceObject = documents.first { $0.object["kind"]?.string == "Namespace" }?.object
        let namespace = try #require(namespaceObject?.value("metadata", "name")?.string)
        for (file, object) in documents {
            #expect(object["apiVersion"]?.string?.isEmpty == false, "\(file)")
            #expect(object.value("metadata", "name")?.string?.isEmpty == false, "\(file)")
            if object["kind"]?.string != "Namespace" {
                #expect(object.value("metadata", "namespace")?.string == namespace, "\(file)")
            }
        }
        // Strict: an unknown key would have thrown; and the strictness is real.
        let configuration = try Self.resolveKubernetesSetup()
        #expect(configuration.nodeID == "worker-1")
        #expect(configuration.media.advertisedAddresses == ["192.0.2.10"])
        #expect(throws: ConfigurationError.self) {
            _ = try NodeConfigurationLayer(json: Data(#"{"media": {"prot": 40000}}"#.utf8), sourceName: "typo")
        }
    }

    @Test("the DaemonSet: host network, probes on /healthz, drain in preStop, grace above the drain, locked down")
    func daemonSet() throws {
        let configuration = try Self.resolveKubernetesSetup()
        let daemonSet = try Self.kubernetesObject(kind: "DaemonSet")
        let pod = try #require(daemonSet.value("spec", "template", "spec"))
        #expect(pod["hostNetwork"]?.string == "true")
        #expect(pod["dnsPolicy"]?.string == "ClusterFirstWithHostNet")
        let podLabels = daemonSet.value("spec", "template", "metadata", "labels")
        #expect(daemonSet.value("spec", "selector", "matchLabels") == podLabels)
        let container = try #require(pod.value("containers", 0))

        // Ports: the node's, from the same configuration the pod resolves.
        var ports: [String: (port: Int, proto: String)] = [:]
        for port in container["ports"]?.list ?? [] {
            ports[port["name"]?.string ?? ""] = (port["containerPort"]?.int ?? -1, port["protocol"]?.string ?? "TCP")
        }
        #expect(ports["http"]?.port == configuration.http.port && ports["http"]?.proto == "TCP")
        #expect(ports["media"]?.port == configuration.media.port && ports["media"]?.proto == "UDP")
        #expect(ports["mesh"]?.port == configuration.cluster.meshPort && ports["mesh"]?.proto == "UDP")

        for probe in ["readinessProbe", "livenessProbe"] {
            #expect(container.value(probe, "httpGet", "path")?.string == "/healthz", "\(probe)")
            let port = container.value(probe, "httpGet", "port")?.string
            #expect(port == "http" || port == String(configuration.http.port), "\(probe)")
        }

        // preStop drains on the operator listener (loopback: shared with the host network), then waits;
        // the grace period outlasts that wait plus the drain that SIGTERM starts.
        let preStop = (container.value("lifecycle", "preStop", "exec", "command")?.list ?? []).compactMap(\.string)
            .joined(separator: " ")
        #expect(NodeConfiguration.isLoopback(configuration.admin.address))
        #expect(preStop.contains("POST"))
        #expect(preStop.contains("\(configuration.admin.address):\(configuration.admin.port)/api/v1/drain"))
        let sleep = Int(try #require(preStop.firstMatch(of: #/sleep (\d+)/#)).output.1) ?? 0
        let grace = try #require(pod["terminationGracePeriodSeconds"]?.int)
        #expect(grace > configuration.drainTimeoutSeconds)
        #expect(grace > sleep + configuration.drainTimeoutSeconds)

        for kind in ["requests", "limits"] {
            #expect(container.value("resources", kind, "cpu") != nil, "\(kind).cpu")
            #expect(container.value("resources", kind, "memory") != nil, "\(kind).memory")
        }

        let security = try #require(container["securityContext"])
        #expect(
            security["runAsNonRoot"]?.string == "true"
                || pod.value("securityContext", "runAsNonRoot")?.string == "true")
        #expect(security["readOnlyRootFilesystem"]?.string == "true")
        #expect(security["allowPrivilegeEscalation"]?.string == "false")
        #expect(security.value("capabilities", "drop")?.list.compactMap(\.string) == ["ALL"])
        // The pod's uid is the image's user.
        let imageUser = try Containerfile(parsing: Self.text("Containerfile")).last("USER")?.arguments
            .split(separator: ":").first.map(String.init)
        #expect(pod.value("securityContext", "runAsUser")?.string == imageUser)

        // Volumes: the config file, the token key and the (writable) state directory are where the
        // configuration says.
        var volumes: [String: YAML] = [:]
        for volume in pod["volumes"]?.list ?? [] { volumes[volume["name"]?.string ?? ""] = volume }
        var mounts: [String: (volume: YAML, readOnly: Bool)] = [:]
        for mount in container["volumeMounts"]?.list ?? [] {
            let volume = try #require(volumes[mount["name"]?.string ?? ""], "mount of an undeclared volume")
            mounts[mount["mountPath"]?.string ?? ""] = (volume, mount["readOnly"]?.string == "true")
        }
        func mounted(_ path: String) -> (volume: YAML, file: String)? {
            let url = URL(fileURLWithPath: path)
            guard let mount = mounts[url.deletingLastPathComponent().path] else { return nil }
            return (mount.volume, url.lastPathComponent)
        }

        let arguments = (container["args"]?.list ?? []).compactMap(\.string)
        let configPath = try #require(Self.flagValue("config", in: arguments))
        let config = try #require(mounted(configPath), "config not mounted")
        let configMap = try Self.kubernetesObject(kind: "ConfigMap")
        #expect(config.volume.value("configMap", "name") == configMap.value("metadata", "name"))
        #expect(configMap.value("data", config.file) != nil)

        let keyFile = try #require(configuration.auth.tokenKeyFile)
        let key = try #require(mounted(keyFile), "token key not mounted")
        let secret = try Self.kubernetesObject(kind: "Secret")
        #expect(key.volume.value("secret", "secretName") == secret.value("metadata", "name"))
        #expect(secret.value("stringData", key.file) != nil)

        let state = try #require(configuration.stateDirectory)
        #expect(mounts[state]?.readOnly == false, "the state directory must be a writable volume")
    }

    @Test("the Service points at the DaemonSet's HTTP port")
    func service() throws {
        let service = try Self.kubernetesObject(kind: "Service")
        let daemonSet = try Self.kubernetesObject(kind: "DaemonSet")
        let labels = try #require(daemonSet.value("spec", "template", "metadata", "labels"))
        #expect(service.value("spec", "selector") == labels)
        let ports = service.value("spec", "ports")?.list ?? []
        #expect(ports.count == 1)
        #expect(ports.first?["targetPort"]?.string == "http")
        #expect(ports.first?["port"]?.int == NodeConfiguration.defaultHTTPPort)
    }

    // MARK: - The readers themselves

    @Test("the YAML reader: maps, lists of maps, flow lists, block scalars, comments")
    func yamlReader() throws {
        let documents = try YAMLReader.documents(
            in: """
                # comment
                a: 1
                b:
                  - name: x   # trailing comment
                    value: "quoted # not a comment"
                  - plain
                  -
                    deep: yes
                c: ["--config", '/etc/x.json']
                d: {}
                e: |
                  {"k": [1,
                    2]}
                f:
                - top
                ---
                kind: Second
                """)
        #expect(documents.count == 2)
        let first = try #require(documents.first)
        #expect(first["a"]?.string == "1")
        #expect(first.value("b", 0, "name")?.string == "x")
        #expect(first.value("b", 0, "value")?.string == "quoted # not a comment")
        #expect(first.value("b", 1)?.string == "plain")
        #expect(first.value("b", 2, "deep")?.string == "yes")
        #expect(first["c"]?.list.compactMap(\.string) == ["--config", "/etc/x.json"])
        #expect(first["d"] == .map([]))
        #expect(first["e"]?.string == "{\"k\": [1,\n  2]}\n")
        #expect(first["f"]?.list.compactMap(\.string) == ["top"])
        #expect(documents.last?["kind"]?.string == "Second")
        #expect(throws: YAMLReader.Failure.self) { _ = try YAMLReader.documents(in: "a: 1\n   b: 2\n") }
    }

    @Test("the unit and Containerfile readers")
    func iniAndContainerfileReaders() throws {
        let unit = try SystemdUnit(parsing: "[Service]\n# c\nA=1\nA=\nB = x \\\n  y\n")
        #expect(unit.values("Service", "A") == ["1", ""])
        #expect(unit.value("Service", "B") == "x y")
        #expect(SystemdUnit.seconds("45") == 45 && SystemdUnit.seconds("1min 30s") == 90)
        #expect(SystemdUnit.seconds("2m") == 120 && SystemdUnit.seconds("500ms") == 0.5)
        #expect(Self.assignments(["A=1 \"B=two words\"", "C=3"]) == ["A": "1", "B": "two words", "C": "3"])
        let file = try Containerfile(
            parsing: "FROM x\n# c\nRUN a \\\n  # inner\n  b\nENV A=1 \\\n    B=2\nCMD [\"--x\", \"y\"]\n")
        #expect(file.instructions.map(\.keyword) == ["FROM", "RUN", "ENV", "CMD"])
        #expect(file.last("RUN")?.arguments == "a b")
        #expect(file.environment == ["A": "1", "B": "2"])
        #expect(file.last("CMD")?.words == ["--x", "y"])
    }

    // MARK: - Small helpers

    /// Whitespace-separated words, with double-quoted words kept whole (quotes removed).
    static func words(_ text: String) -> [String] {
        var words: [String] = []
        var current = ""
        var inQuotes = false
        var hasWord = false
        for character in text {
            if character == "\"" {
                inQuotes.toggle()
                hasWord = true
            } else if character.isWhitespace && !inQuotes {
                if hasWord { words.append(current) }
                current = ""
                hasWord = false
            } else {
                current.append(character)
                hasWord = true
            }
        }
        if hasWord { words.append(current) }
        return words
    }

    /// `NAME=value` words (systemd `Environment=` lines, Dockerfile `ENV`), later ones winning.
    static func assignments(_ lines: [String]) -> [String: String] {
        var result: [String: String] = [:]
        for word in lines.flatMap(Self.words) {
            guard let equals = word.firstIndex(of: "=") else { continue }
            result[String(word[..<equals])] = String(word[word.index(after: equals)...])
        }
        return result
    }

    /// The `BRAID_*=value` lines of an environment file; with `includingCommented`, `#BRAID_*=value` too.
    static func environmentLines(_ text: String, includingCommented: Bool) throws -> [(String, String)] {
        var result: [(String, String)] = []
        for rawLine in text.split(separator: "\n") {
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") {
                guard includingCommented, line.dropFirst().hasPrefix("BRAID_") else { continue }
                line.removeFirst()
            }
            if line.isEmpty { continue }
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            try #require(parts.count == 2, "not NAME=value: \(line)")
            result.append((String(parts[0]), String(parts[1])))
        }
        return result
    }
}

// MARK: - systemd unit files

/// A systemd unit file: sections of `Key=Value` lines, keys repeatable (values in file order).
struct SystemdUnit {
    var sections: [String: [(key: String, value: String)]] = [:]

    init(parsing text: String) throws {
        var section: String?
        var pending = ""
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if pending.isEmpty && (line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";")) { continue }
            if !pending.isEmpty && (line.hasPrefix("#") || line.hasPrefix(";")) { continue }
            if line.hasSuffix("\\") {
                pending += line.dropLast().trimmingCharacters(in: .whitespaces) + " "
                continue
            }
            let logical = pending + line
            pending = ""
            if logical.hasPrefix("[") && logical.hasSuffix("]") {
                section = String(logical.dropFirst().dropLast())
                self.sections[section!, default: []] += []
                continue
            }
            guard let section, let equals = logical.firstIndex(of: "=") else {
                throw DeploymentFileError("unit line outside a section or without '=': \(logical)")
            }
            let key = logical[..<equals].trimmingCharacters(in: .whitespaces)
            let value = logical[logical.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            self.sections[section, default: []].append((key, value))
        }
    }

    func values(_ section: String, _ key: String) -> [String] {
        (self.sections[section] ?? []).filter { $0.key == key }.map(\.value)
    }

    /// The last value of a key (the one systemd uses for single-valued settings).
    func value(_ section: String, _ key: String) -> String? { self.values(section, key).last }

    /// A systemd time span (`45`, `45s`, `1min 30s`, `2m`, `500ms`) in seconds.
    static func seconds(_ span: String) -> Double? {
        let units: [String: Double] = [
            "": 1, "s": 1, "sec": 1, "second": 1, "seconds": 1, "ms": 0.001, "msec": 0.001,
            "m": 60, "min": 60, "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
        ]
        var total = 0.0
        var matched = false
        for match in span.matches(of: #/(\d+(?:\.\d+)?)\s*([a-z]*)/#) {
            guard let number = Double(match.output.1), let unit = units[String(match.output.2)] else { return nil }
            total += number * unit
            matched = true
        }
        return matched ? total : nil
    }
}

// MARK: - Containerfiles

/// A Containerfile (Dockerfile syntax) as its instructions, continuation lines joined, comments dropped.
struct Containerfile {
    struct Instruction {
        var keyword: String
        var arguments: String

        /// The arguments as words: a JSON array (exec form) or whitespace-separated (shell form).
        var words: [String] {
            if self.arguments.hasPrefix("["),
                let array = try? JSONDecoder().decode([String].self, from: Data(self.arguments.utf8))
            {
                return array
            }
            return DeploymentFileTests.words(self.arguments)
        }
    }

    var instructions: [Instruction] = []

    init(parsing text: String) throws {
        var pending = ""
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasSuffix("\\") {
                pending += line.dropLast().trimmingCharacters(in: .whitespaces) + " "
                continue
            }
            let logical = pending + line
            pending = ""
            let keyword = logical.prefix { !$0.isWhitespace }
            self.instructions.append(
                Instruction(
                    keyword: keyword.uppercased(),
                    arguments: logical.dropFirst(keyword.count).trimmingCharacters(in: .whitespaces)))
        }
        if !pending.isEmpty { throw DeploymentFileError("Containerfile ends inside a continuation") }
    }

    func all(_ keyword: String) -> [Instruction] { self.instructions.filter { $0.keyword == keyword } }
    func last(_ keyword: String) -> Instruction? { self.all(keyword).last }

    /// The variables `ENV NAME=value ...` sets.
    var environment: [String: String] {
        DeploymentFileTests.assignments(self.all("ENV").map(\.arguments))
    }
}

struct DeploymentFileError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - A YAML subset

/// A YAML node, as much of YAML as Kubernetes manifests written by hand need: block maps and lists, flow
/// lists, `{}`, quoted and plain scalars, literal block scalars (`|`), comments and `---` documents.
/// Scalars stay strings (`true`, `75`), so tests compare them as written.
enum YAML: Equatable {
    case scalar(String)
    case list([YAML])
    case map([Entry])

    struct Entry: Equatable {
        var key: String
        var value: YAML
    }

    subscript(key: String) -> YAML? {
        guard case .map(let entries) = self else { return nil }
        return entries.last { $0.key == key }?.value
    }

    subscript(index: Int) -> YAML? {
        guard case .list(let items) = self, items.indices.contains(index) else { return nil }
        return items[index]
    }

    /// The node at a path of keys (String) and list indices (Int).
    func value(_ path: any Sendable...) -> YAML? {
        var node: YAML? = self
        for component in path {
            if let key = component as? String {
                node = node?[key]
            } else if let index = component as? Int {
                node = node?[index]
            } else {
                return nil
            }
        }
        return node
    }

    var string: String? {
        guard case .scalar(let text) = self else { return nil }
        return text
    }

    var int: Int? { self.string.flatMap { Int($0) } }

    var list: [YAML] {
        guard case .list(let items) = self else { return [] }
        return items
    }
}

/// Reads the YAML subset of ``YAML`` line by line, by indentation.
struct YAMLReader {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private var lines: [String]
    private var position = 0

    private init(lines: [String]) { self.lines = lines }

    /// The documents of a stream separated by `---` lines (empty documents skipped).
    static func documents(in text: String) throws(Failure) -> [YAML] {
        var chunks: [[String]] = [[]]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.trimmingCharacters(in: .whitespaces) == "---" {
                chunks.append([])
            } else {
                chunks[chunks.count - 1].append(String(line))
            }
        }
        var documents: [YAML] = []
        for chunk in chunks {
            var reader = YAMLReader(lines: chunk)
            guard let indent = reader.skipToContent() else { continue }
            documents.append(try reader.parseBlock(indent: indent))
            if reader.skipToContent() != nil {
                throw Failure(description: "unexpected indentation: \(reader.lines[reader.position])")
            }
        }
        return documents
    }

    private static func indentation(_ line: String) -> Int { line.prefix { $0 == " " }.count }

    private static func isListItem<S: StringProtocol>(_ text: S) -> Bool { text == "-" || text.hasPrefix("- ") }

    /// Moves past blank and comment lines; the indentation of the next content line, if any.
    private mutating func skipToContent() -> Int? {
        while self.position < self.lines.count {
            let trimmed = self.lines[self.position].trimmingCharacters(in: .whitespaces)
            if !trimmed.isEmpty && !trimmed.hasPrefix("#") { break }
            self.position += 1
        }
        return self.position < self.lines.count ? Self.indentation(self.lines[self.position]) : nil
    }

    private mutating func parseBlock(indent: Int) throws(Failure) -> YAML {
        Self.isListItem(self.lines[self.position].dropFirst(indent))
            ? try self.parseList(indent: indent) : try self.parseMap(indent: indent)
    }

    private mutating func parseList(indent: Int) throws(Failure) -> YAML {
        var items: [YAML] = []
        while let current = self.skipToContent(), current == indent {
            let text = String(self.lines[self.position].dropFirst(indent))
            guard Self.isListItem(text) else { break }
            let rest = text.dropFirst().drop { $0 == " " }
            if rest.isEmpty {
                self.position += 1
                if let next = self.skipToContent(), next > indent {
                    items.append(try self.parseBlock(indent: next))
                } else {
                    items.append(.scalar(""))
                }
            } else if Self.splitKey(String(rest)) != nil || Self.isListItem(rest) {
                // "- key: value" starts a map (or "- - x" a list) at the column after the dash.
                let column = indent + text.count - rest.count
                self.lines[self.position] = String(repeating: " ", count: column) + rest
                items.append(try self.parseBlock(indent: column))
            } else {
                self.position += 1
                items.append(try Self.parseValue(String(rest)))
            }
        }
        return .list(items)
    }

    private mutating func parseMap(indent: Int) throws(Failure) -> YAML {
        var entries: [YAML.Entry] = []
        while let current = self.skipToContent(), current == indent {
            let text = String(self.lines[self.position].dropFirst(indent))
            if Self.isListItem(text) { break }
            guard let (key, value) = Self.splitKey(text) else {
                throw Failure(description: "expected 'key: value': \(text)")
            }
            self.position += 1
            let bare = Self.stripComment(value)
            if bare == "|" || bare == "|-" {
                let body = self.blockScalar(parentIndent: indent, chomp: bare == "|-")
                entries.append(YAML.Entry(key: key, value: .scalar(body)))
            } else if bare.isEmpty {
                if let next = self.skipToContent(),
                    next > indent || (next == indent && Self.isListItem(self.lines[self.position].dropFirst(indent)))
                {
                    entries.append(YAML.Entry(key: key, value: try self.parseBlock(indent: next)))
                } else {
                    entries.append(YAML.Entry(key: key, value: .scalar("")))
                }
            } else {
                entries.append(YAML.Entry(key: key, value: try Self.parseValue(value)))
            }
        }
        return .map(entries)
    }

    /// The lines of a literal block scalar, indented deeper than its key; one final newline unless `|-`.
    private mutating func blockScalar(parentIndent: Int, chomp: Bool) -> String {
        var collected: [String] = []
        while self.position < self.lines.count {
            let line = self.lines[self.position]
            let blank = line.trimmingCharacters(in: .whitespaces).isEmpty
            if !blank && Self.indentation(line) <= parentIndent { break }
            collected.append(line)
            self.position += 1
        }
        while collected.last?.trimmingCharacters(in: .whitespaces).isEmpty == true { collected.removeLast() }
        let indent =
            collected.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map(Self.indentation).min() ?? 0
        let body = collected.map { String($0.dropFirst(min(indent, Self.indentation($0)))) }.joined(separator: "\n")
        return chomp ? body : body + "\n"
    }

    /// Splits `key: value` (or `key:`) at the first colon outside quotes followed by a space or the end.
    private static func splitKey(_ text: String) -> (String, String)? {
        guard let first = text.first, !"[{\"'#".contains(first) else { return nil }
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(after: index)
            if text[index] == ":" && (next == text.endIndex || text[next] == " ") {
                let key = text[..<index].trimmingCharacters(in: .whitespaces)
                return key.isEmpty ? nil : (key, text[next...].trimmingCharacters(in: .whitespaces))
            }
            if text[index] == " " && next < text.endIndex && text[next] == "#" { return nil }
            index = next
        }
        return nil
    }

    /// Drops a ` # comment` outside quotes and surrounding spaces.
    private static func stripComment(_ text: String) -> String {
        var quote: Character?
        var previous: Character = " "
        for (offset, character) in text.enumerated() {
            if let open = quote {
                if character == open { quote = nil }
            } else if character == "\"" || character == "'" {
                quote = character
            } else if character == "#" && previous == " " {
                return String(text.prefix(offset)).trimmingCharacters(in: .whitespaces)
            }
            previous = character
        }
        return text.trimmingCharacters(in: .whitespaces)
    }

    /// A scalar (plain or quoted), a flow list `[a, "b"]` or an empty flow map `{}`.
    private static func parseValue(_ raw: String) throws(Failure) -> YAML {
        let text = Self.stripComment(raw)
        if text == "{}" { return .map([]) }
        if text.hasPrefix("{") { throw Failure(description: "flow maps are not supported: \(text)") }
        if text.hasPrefix("[") {
            guard text.hasSuffix("]") else { throw Failure(description: "unterminated flow list: \(text)") }
            var items: [YAML] = []
            var current = ""
            var quote: Character?
            for character in text.dropFirst().dropLast() {
                if let open = quote {
                    if character == open { quote = nil }
                    current.append(character)
                } else if character == "\"" || character == "'" {
                    quote = character
                    current.append(character)
                } else if character == "," {
                    items.append(.scalar(Self.unquote(current.trimmingCharacters(in: .whitespaces))))
                    current = ""
                } else {
                    current.append(character)
                }
            }
            let last = current.trimmingCharacters(in: .whitespaces)
            if !last.isEmpty { items.append(.scalar(Self.unquote(last))) }
            return .list(items)
        }
        return .scalar(Self.unquote(text))
    }

    private static func unquote(_ text: String) -> String {
        if text.count >= 2 && text.hasPrefix("\"") && text.hasSuffix("\"") {
            return String(text.dropFirst().dropLast()).replacing("\\\"", with: "\"").replacing("\\\\", with: "\\")
        }
        if text.count >= 2 && text.hasPrefix("'") && text.hasSuffix("'") {
            return String(text.dropFirst().dropLast()).replacing("''", with: "'")
        }
        return text
    }
}
