import Crypto
import Foundation
import EditContract
import NIOCore

/// A picture carried with a batch: its file's bytes as the client read them, named by their
/// SHA-256 (`PictureDigest`). The coordinator keeps it once however many edits name it, and
/// sends it with each stage-1 task that edits it, so no worker opens a path a batch names.
public struct CarriedPicture: Sendable, Equatable {
    public let digest: String
    public let bytes: [UInt8]

    /// A picture named by its bytes' digest.
    public init(bytes: [UInt8]) {
        (self.digest, self.bytes) = (Self.digest(of: bytes), bytes)
    }

    /// A picture as another side named it (check `isIntact` before trusting the name).
    public init(digest: String, bytes: [UInt8]) {
        (self.digest, self.bytes) = (digest, bytes)
    }

    /// The largest picture file carried (bytes), as a client reads it and a coordinator takes it.
    public static let maximumBytes = 64 << 20
    /// The most digests one question about pictures may name.
    public static let maximumDigestsPerQuery = 100_000

    /// The SHA-256 of `bytes` in lowercase hex.
    public static func digest<Bytes: DataProtocol>(of bytes: Bytes) -> String {
        SHA256.hash(data: bytes).map { byte in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }.joined()
    }

    /// Whether the bytes are the ones the digest names.
    public var isIntact: Bool { PictureDigest.isWellFormed(digest) && Self.digest(of: bytes) == digest }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeField(digest)
        buffer.writeField(bytes)
    }

    static func decode(from buffer: inout ByteBuffer) throws -> CarriedPicture {
        let digest = try buffer.readString(field: "picture digest", limit: 64)
        guard PictureDigest.isWellFormed(digest) else { throw WireError(.malformed, "picture digest: not a SHA-256 in hex") }
        return CarriedPicture(digest: digest, bytes: try buffer.readByteArray(field: "picture \(digest.prefix(12))", limit: maximumBytes))
    }
}
