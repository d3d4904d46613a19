import NIOCore

/// What a worker can run, sent in its hello (clients and monitors send none).
public struct NodeCapabilities: Sendable, Equatable {
    /// Capability keys (`CapabilityKey`): "default" for the embedded model, else the --model
    /// paths as given, with "@bf16" for those it runs in bfloat16.
    public var models: [String]
    public var threads: Int
    public var host: String
    public var version: String

    public init(models: [String] = [], threads: Int = 0, host: String = "", version: String = "") {
        (self.models, self.threads, self.host, self.version) = (models, threads, host, version)
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeField(models)
        buffer.writeInteger(UInt32(clamping: threads))
        buffer.writeField(host)
        buffer.writeField(version)
    }

    static func decode(from buffer: inout ByteBuffer) throws -> NodeCapabilities {
        NodeCapabilities(models: try buffer.readStrings(field: "models", limit: 4096, each: 4096),
                         threads: Int(try buffer.readInteger(field: "threads", as: UInt32.self)),
                         host: try buffer.readString(field: "host", limit: 256), version: try buffer.readString(field: "version", limit: 256))
    }
}
