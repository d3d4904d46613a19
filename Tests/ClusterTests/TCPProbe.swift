import Foundation
import NIOCore
import NIOPosix

/// A plain TCP client for the tests: sends bytes (or nothing), collects what comes back, and
/// notes when the other end closes.
final class TCPProbe: @unchecked Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let channel: Channel
    private let received = Received()

    final class Received: @unchecked Sendable {
        let lock = NSLock()
        var bytes: [UInt8] = []
        var closed = false
    }

    final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let received: Received
        init(received: Received) { self.received = received }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            received.lock.withLock { received.bytes += buffer.readableBytesView }
        }
        func channelInactive(context: ChannelHandlerContext) {
            received.lock.withLock { received.closed = true }
        }
    }

    init(host: String, port: Int) throws {
        let received = self.received
        channel = try ClientBootstrap(group: group).channelInitializer { channel in
            channel.pipeline.addHandler(Collector(received: received))
        }.connect(host: host, port: port).wait()
    }

    deinit { try? group.syncShutdownGracefully() }

    func send(_ text: String) throws {
        try channel.writeAndFlush(channel.allocator.buffer(string: text)).wait()
    }

    /// Waits up to `timeout` for the other end to close; returns whether it did.
    func waitForClose(timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if received.lock.withLock({ received.closed }) { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return false
    }

    var text: String { received.lock.withLock { String(decoding: received.bytes, as: UTF8.self) } }

    /// GET `path` over HTTP/1.1; the response's text once the server closes.
    static func get(host: String, port: Int, path: String, timeout: TimeInterval = 10) throws -> String {
        let probe = try TCPProbe(host: host, port: port)
        try probe.send("GET \(path) HTTP/1.1\r\nHost: \(host)\r\n\r\n")
        _ = probe.waitForClose(timeout: timeout)
        return probe.text
    }
}
