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
        String(decoding: try request(host: host, port: port, path: path, timeout: timeout).raw, as: UTF8.self)
    }

    /// An HTTP/1.1 exchange with a server that closes after its response (as the coordinator's
    /// metrics port does): the status code, the header block and the body's bytes.
    static func request(host: String, port: Int, path: String, method: String = "GET", hostHeader: String? = nil,
                        timeout: TimeInterval = 10) throws -> (status: Int, headers: String, body: [UInt8], raw: [UInt8]) {
        let probe = try TCPProbe(host: host, port: port)
        try probe.send("\(method) \(path) HTTP/1.1\r\nHost: \(hostHeader ?? host)\r\nConnection: close\r\n\r\n")
        _ = probe.waitForClose(timeout: timeout)
        let raw = probe.received.lock.withLock { probe.received.bytes }
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = (0..<max(0, raw.count - 3)).first(where: { Array(raw[$0..<($0 + 4)]) == separator }) else { return (0, "", [], raw) }
        let headers = String(decoding: raw[..<end], as: UTF8.self)
        let status = Int(headers.split(separator: " ").dropFirst().first ?? "") ?? 0
        var body = Array(raw[(end + 4)...])
        if headers.lowercased().contains("transfer-encoding: chunked") { body = dechunked(body) }
        return (status, headers, body, raw)
    }

    /// The payload of a chunked HTTP body (hex size line, chunk, CRLF; a zero size ends it).
    static func dechunked(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while let lineEnd = (index..<max(index, bytes.count - 1)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }),
              let size = Int(String(decoding: bytes[index..<lineEnd], as: UTF8.self).split(separator: ";").first ?? "", radix: 16),
              size > 0, lineEnd + 2 + size <= bytes.count {
            out += bytes[(lineEnd + 2)..<(lineEnd + 2 + size)]
            index = lineEnd + 2 + size + 2
        }
        return out
    }
}
