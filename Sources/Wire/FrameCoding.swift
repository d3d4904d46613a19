import NIOCore

/// What a connection accepts: the largest frame, and the decompressed tensor bytes one message
/// may carry. Before the handshake finishes, small frames and no tensors, so that a peer without
/// the secret can make this side allocate nothing large; raised once the other side is proven.
/// Shared by the connection's decoder and its handler, both on the connection's event loop.
public final class ConnectionLimits: @unchecked Sendable {
    public private(set) var frameBytes: Int
    public private(set) var tensorBytes: Int

    public init(frameBytes: Int, tensorBytes: Int) {
        self.frameBytes = frameBytes
        self.tensorBytes = tensorBytes
    }

    /// The limits of a connection whose handshake has not finished.
    public static func unauthenticated() -> ConnectionLimits {
        ConnectionLimits(frameBytes: WireProtocol.unauthenticatedFrameLimit, tensorBytes: 0)
    }

    /// Raises the limits once the other side has proven the secret.
    public func authenticated(frameBytes: Int = WireProtocol.defaultFrameLimit, tensorBytes: Int) {
        self.frameBytes = frameBytes
        self.tensorBytes = tensorBytes
    }
}

/// Frames: a 4-byte big-endian body length, then the body. A length over the connection's
/// limit is refused as soon as the 4 bytes arrive, before anything is buffered or allocated
/// for it. Bodies are parsed into messages here.
public struct WireMessageDecoder: ByteToMessageDecoder {
    public typealias InboundOut = WireMessage

    public let limits: ConnectionLimits
    public let codec: TensorCodec

    public init(limits: ConnectionLimits, codec: TensorCodec) {
        self.limits = limits
        self.codec = codec
    }

    /// The bytes "HTTP" as a big-endian length.
    static let httpLength = UInt32(bigEndian: Array("HTTP".utf8).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        // "HTTP" read as a length: a web server answered (the coordinator's metrics port, say).
        guard length != Self.httpLength else {
            throw WireError(.malformed, "the other side answered in HTTP: it is a web server (the coordinator's metrics port?), not the coordinator's protocol port")
        }
        // A TLS record (handshake 0x16 or alert 0x15, version 3.x) read as a length: the other
        // side speaks TLS and this one does not.
        if length >> 24 == 0x16 || length >> 24 == 0x15, (length >> 16) & 0xFF == 0x03 {
            throw WireError(.tlsMismatch, "the other side speaks TLS and this connection does not: give workers and clients --tls-ca "
                            + "(the CA of the coordinator's certificate), or start the coordinator without --tls-cert")
        }
        guard Int(length) <= limits.frameBytes else {
            throw WireError(.frameTooLarge, "frame of \(length) bytes over the limit of \(limits.frameBytes)")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        guard var body = buffer.readSlice(length: Int(length)) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(try WireMessage.decode(&body, codec: codec, tensorBytes: limits.tensorBytes)))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A partial frame at the end of the stream is dropped with the connection.
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// Writes messages as frames.
public struct WireMessageEncoder: MessageToByteEncoder {
    public typealias OutboundIn = WireMessage
    public let codec: TensorCodec

    public init(codec: TensorCodec) { self.codec = codec }

    public func encode(data: WireMessage, out: inout ByteBuffer) throws {
        let start = out.writerIndex
        out.writeInteger(UInt32(0))
        try data.encode(into: &out, codec: codec)
        out.setInteger(UInt32(out.writerIndex - start - 4), at: start)
    }
}
