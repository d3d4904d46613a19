import Foundation
import NIOCore
import NIOPosix

/// A TCP forwarder in front of the coordinator's port that keeps a copy of every byte crossing
/// it, both ways: what an eavesdropper on the network would see.
final class RecordingProxy: @unchecked Sendable {
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let lock = NSLock()
    private var captured: [UInt8] = []
    private var server: Channel?
    private(set) var port = 0

    init(targetPort: Int) throws {
        let record: @Sendable ([UInt8]) -> Void = { [weak self] bytes in self?.lock.withLock { self?.captured += bytes } }
        let group = group
        server = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                let inboundSide = Splice(record: record)
                ClientBootstrap(group: group)
                    .channelInitializer { $0.pipeline.addHandler(Splice(record: record, partner: inbound)) }
                    .connect(host: "127.0.0.1", port: targetPort)
                    .whenComplete { result in
                        switch result {
                        case .success(let outbound): inboundSide.connected(to: outbound)
                        case .failure: inbound.close(promise: nil)
                        }
                    }
                return inbound.pipeline.addHandler(inboundSide)
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        port = server?.localAddress?.port ?? 0
    }

    /// Everything that crossed so far.
    var bytes: [UInt8] { lock.withLock { captured } }

    /// Whether `text` appears in what crossed.
    func saw(_ text: String) -> Bool {
        let needle = Array(text.utf8), haystack = bytes
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        return (0...(haystack.count - needle.count)).contains { start in haystack[start..<(start + needle.count)].elementsEqual(needle) }
    }

    func stop() {
        server?.close(promise: nil)
        try? group.syncShutdownGracefully()
    }

    /// One direction of a spliced connection: what it reads is recorded and written to the
    /// other, held until the other is connected. (One event loop runs both.)
    private final class Splice: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let record: @Sendable ([UInt8]) -> Void
        private var partner: Channel?
        private var held: [ByteBuffer] = []

        init(record: @escaping @Sendable ([UInt8]) -> Void, partner: Channel? = nil) { (self.record, self.partner) = (record, partner) }

        func connected(to partner: Channel) {
            self.partner = partner
            for buffer in held { partner.write(buffer, promise: nil) }
            held.removeAll()
            partner.flush()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            record(Array(buffer.readableBytesView))
            if let partner { partner.writeAndFlush(buffer, promise: nil) } else { held.append(buffer) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            partner?.close(promise: nil)
            context.fireChannelInactive()
        }
    }
}
