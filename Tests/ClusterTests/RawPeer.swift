import Foundation
import Imaging
import NIOCore
import NIOPosix
import Testing
import Wire


/// A hand-driven protocol peer for the hostile-input tests.
final class RawPeer: @unchecked Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let channel: Channel
    let inbox = Inbox()

    final class Inbox: @unchecked Sendable {
        let lock = NSLock()
        var messages: [WireMessage] = []
        var closed = false
    }

    init(address: String) throws {
        let parts = address.split(separator: ":")
        let inbox = self.inbox
        channel = try ClientBootstrap(group: group).channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandlers([
                    ByteToMessageHandler(WireMessageDecoder(limits: ConnectionLimits(frameBytes: 1 << 20, tensorBytes: 1 << 20), codec: TensorCodec())),
                    Collector(inbox: inbox),
                ])
            }
        }.connect(host: String(parts[0]), port: Int(parts[1])!).wait()
    }

    final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = WireMessage
        let inbox: Inbox
        init(inbox: Inbox) { self.inbox = inbox }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            inbox.lock.withLock { inbox.messages.append(unwrapInboundIn(data)) }
        }
        func channelInactive(context: ChannelHandlerContext) { inbox.lock.withLock { inbox.closed = true } }
    }

    static func frame(_ message: WireMessage, codec: TensorCodec = TensorCodec()) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        try WireMessageEncoder(codec: codec).encode(data: message, out: &buffer)
        return buffer
    }

    /// A finish result whose image claims 16 bytes but holds a zstd frame of 64 MiB of zeros.
    static func bombFrame() throws -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(UInt8(14))  // result
        body.writeInteger(UInt32(6))
        body.writeString("t-bomb")
        body.writeInteger(UInt8(2))   // a finish result
        body.writeInteger(Double(0).bitPattern)
        let huge = TensorPayload(name: "x", elementType: .uint8, shape: [64 << 20], bytes: [UInt8](repeating: 0, count: 64 << 20))
        var tensor = ByteBuffer()
        try TensorCodec(zstdLevel: 19, shuffle: false).encode(huge, into: &tensor)
        // Rewrite the declared shape and size to 16 bytes; the stored zstd frame still says 64 MiB.
        let nameLength = 4 + 1
        tensor.setInteger(UInt32(16), at: nameLength + 2)            // shape[0]
        tensor.setInteger(UInt64(16), at: nameLength + 2 + 4 + 2)    // raw size
        body.writeBuffer(&tensor)
        var frame = ByteBuffer()
        frame.writeInteger(UInt32(body.readableBytes))
        frame.writeBuffer(&body)
        return frame
    }

    func authenticate(secret: SharedSecret, nodeID: String) throws {
        var handshake = ClientHandshake(secret: secret, role: .worker, nodeID: nodeID)
        try channel.writeAndFlush(try Self.frame(handshake.hello(capabilities: NodeCapabilities(models: [], threads: 1, host: "x", version: "t")))).wait()
        guard case .challenge(let nonce)? = waitMessage() else { throw HarnessError("no challenge") }
        try channel.writeAndFlush(try Self.frame(try handshake.answer(challenge: nonce))).wait()
        guard case .welcome(_, let proof)? = waitMessage() else { throw HarnessError("not welcomed") }
        try handshake.accept(welcomeProof: proof)
    }

    /// A result holding an honest 64 MiB tensor of zeros: a few kilobytes on the wire.
    static func honestLargeResultFrame() throws -> ByteBuffer {
        let zeros = TensorPayload(name: "zeros", elementType: .uint8, shape: [64 << 20], bytes: [UInt8](repeating: 0, count: 64 << 20))
        return try frame(.result(taskID: "t-early", result: .finish(FinishedImage(seconds: 0, image: zeros))), codec: TensorCodec(zstdLevel: 19, shuffle: false))
    }

    /// Sends raw frames and returns the first message back (nil if the peer just closed).
    func exchange(frames: [ByteBuffer]) throws -> WireMessage? {
        for frame in frames { try channel.writeAndFlush(frame).wait() }
        return waitMessage()
    }

    func waitMessage(timeout: TimeInterval = 10) -> WireMessage? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let message: WireMessage = inbox.lock.withLock({ inbox.messages.isEmpty ? nil : inbox.messages.removeFirst() }) { return message }
            if inbox.lock.withLock({ inbox.closed }) { return nil }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return nil
    }

    /// Ends the connection with a TCP reset (SO_LINGER 0), as a crashed host's does.
    func reset() {
        try? (channel as? SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0)).wait()
        channel.close(promise: nil)
    }

    func close() {
        channel.close(promise: nil)
        try? group.syncShutdownGracefully()
    }
}
