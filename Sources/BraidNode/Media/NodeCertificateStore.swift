import BraidSecurity
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The node's DTLS certificate kept in its state directory (``NodeConfiguration/stateDirectory``), so that
/// its fingerprint — in every SDP answer the node gives — survives restarts.
///
/// The file is `dtls-certificate.pem` in the directory: the certificate followed by its unencrypted PKCS #8
/// private key (``DTLSCertificate/pemEncoded()``), mode 0600. At start the node loads it; when it is
/// missing, the node creates a certificate and writes it (the directory is created with mode 0700 if it
/// does not exist). A file that is there but unusable (not PEM, no key, a key of another certificate) stops
/// the node with an error naming the file: it is never silently replaced, since clients may have pinned
/// its fingerprint.
public enum NodeCertificateStore {
    /// The file name inside the state directory.
    public static let fileName = "dtls-certificate.pem"
    /// Validity of a certificate created for the state directory (WebRTC authenticates by fingerprint,
    /// not by dates; a long validity keeps the fingerprint stable).
    public static let validityDays = 3650
    /// The certificate's subject and issuer CN.
    public static let commonName = "braid-node"

    /// Why the certificate could not be loaded or saved.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        /// The file or directory concerned.
        public var path: String
        /// What went wrong.
        public var reason: String

        public var description: String { "\(self.path): \(self.reason)" }
    }

    /// The certificate file's path in `directory`.
    public static func path(in directory: String) -> String {
        URL(fileURLWithPath: directory).appendingPathComponent(Self.fileName).path
    }

    /// Loads the certificate from `directory`, or creates, saves and returns a new one when the file is
    /// missing.
    ///
    /// - Returns: the certificate, and whether it was created now.
    /// - Throws: ``Failure`` when the file exists but is unusable, or cannot be read or written.
    public static func loadOrCreate(in directory: String) throws(Failure) -> (certificate: DTLSCertificate, created: Bool) {
        let path = Self.path(in: directory)
        if FileManager.default.fileExists(atPath: path) {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw Failure(path: path, reason: "cannot read the DTLS certificate: \(error.localizedDescription)")
            }
            do {
                return (try DTLSCertificate(pem: text), false)
            } catch {
                throw Failure(
                    path: path,
                    reason: "not a usable DTLS certificate and private key (\(error)); move it away to make a new one")
            }
        }
        let certificate: DTLSCertificate
        let pem: String
        do {
            certificate = try DTLSCertificate(commonName: Self.commonName, validityDays: Self.validityDays)
            pem = try certificate.pemEncoded()
        } catch {
            throw Failure(path: path, reason: "cannot create a DTLS certificate: \(error)")
        }
        try Self.write(pem, to: path, directory: directory)
        return (certificate, true)
    }

    /// Writes `text` to `path` with mode 0600: to a temporary file first, then renamed over `path`, so a
    /// crash never leaves half a key behind.
    private static func write(_ text: String, to path: String, directory: String) throws(Failure) {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw Failure(path: directory, reason: "cannot create the state directory: \(error.localizedDescription)")
            }
        } else if !isDirectory.boolValue {
            throw Failure(path: directory, reason: "the state directory is not a directory")
        }
        let temporary = path + ".tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw Failure(path: temporary, reason: "cannot create: \(String(cString: strerror(errno)))")
        }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { raw in
                Glibc.write(descriptor, raw.baseAddress! + written, bytes.count - written)
            }
            if result < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close(descriptor)
                unlink(temporary)
                throw Failure(path: temporary, reason: "cannot write: \(reason)")
            }
            written += result
        }
        // The mode given to open() is reduced by the umask; 0600 is what the key needs, whatever the umask.
        let synced = fchmod(descriptor, 0o600) == 0 && fsync(descriptor) == 0
        close(descriptor)
        guard synced, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw Failure(path: path, reason: "cannot save the DTLS certificate: \(reason)")
        }
    }
}
