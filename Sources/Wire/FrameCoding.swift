import NIOCore

/// The largest frame a connection accepts, raised once the peer has authenticated. Shared by
/// the connection's decoder and its handler, both on the connection's event loop.
public final class FrameLimit: @unchecked Sendable {
    public var bytes: Int
    public init(_ bytes: Int) { self.bytes = bytes }
}

/// Frames: a 4-byte big-endian body length, then the body. A length over the connection's
/// limit is refused as soon as the 4 bytes arrive, before anything is buffered or allocated
/// for it. Bodies are parsed into messages here.
public struct WireMessageDecoder: ByteToMessageDecoder {
    public typealias InboundOut = WireMessage

    public let limit: FrameLimit
    public let codec: TensorCodec

    public init(limit: FrameLimit, codec: TensorCodec) {
        self.limit = limit
        self.codec = codec
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard Int(length) <= limit.bytes else {
            throw WireError(.frameTooLarge, "frame of \(length) bytes over the limit of \(limit.bytes)")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        guard var body = buffer.readSlice(length: Int(length)) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(try WireMessage.decode(&body, codec: codec)))
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
