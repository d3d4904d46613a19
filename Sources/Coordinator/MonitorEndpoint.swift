import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The metrics port's HTTP server: `/metrics` for Prometheus, and the live status page at `/`
/// with the JSON it polls (`/status.json`) and the thumbnails and grids of the latest results.
/// It is unauthenticated, so it listens on loopback unless `--metrics-host` says otherwise; a
/// result is named by its job and edit id, looked up in the broker's records, so no path
/// from a request reaches the disk.
final class MonitorEndpoint: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// What the endpoint reads: the metrics (thread-safe), the broker and its board (on their loop) and the
    /// thumbnails (made off the loop).
    struct Sources: Sendable {
        let metrics: CoordinatorMetrics
        let shell: NIOLoopBound<BrokerShell>
        let thumbnails: ThumbnailCache
        /// The port listens on loopback: requests must name a loopback host, so that a web page
        /// elsewhere cannot reach it through a name it rebinds to 127.0.0.1 (DNS rebinding).
        let loopbackOnly: Bool
    }

    private let sources: Sources
    private var request: HTTPRequestHead?
    /// One request per connection: the response closes it, and anything pipelined after the
    /// first request is not worked on.
    private var answered = false

    init(sources: Sources) { self.sources = sources }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let request, !answered else { return }
            self.request = nil
            answered = true
            route(request, channel: context.channel)
        }
    }

    private func route(_ request: HTTPRequestHead, channel: Channel) {
        let reply = Reply(channel: channel, headOnly: request.method == .HEAD)
        guard request.method == .GET || request.method == .HEAD else {
            return reply.send(.methodNotAllowed, type: "text/plain", text: "only GET and HEAD are served here\n", headers: [("Allow", "GET, HEAD")])
        }
        if sources.loopbackOnly, let host = request.headers.first(name: "Host"), !Self.isLoopback(host: host) {
            return reply.send(.forbidden, type: "text/plain",
                              text: "this port listens on loopback and answers to loopback names only (127.0.0.1, localhost, [::1]), not '\(host)'; "
                                  + "tunnel to it, or start the coordinator with --metrics-host to serve other names\n")
        }
        let path = String(request.uri.prefix { $0 != "?" && $0 != "#" })
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map { $0.removingPercentEncoding ?? String($0) }
        switch parts.count {
        case 0:
            reply.send(.ok, type: "text/html; charset=utf-8", bytes: StatusPage.html)
        case 1 where parts[0] == "metrics":
            reply.send(.ok, type: "text/plain; version=0.0.4; charset=utf-8", text: sources.metrics.exposition())
        case 1 where parts[0] == "status.json":
            let shell = sources.shell
            shell.eventLoop.submit { try JSONEncoder.wire.encode(shell.value.board.snapshot(of: shell.value.broker, now: Date())) }
                .whenComplete { result in
                    switch result {
                    case .success(let json): reply.send(.ok, type: "application/json", bytes: Array(json))
                    case .failure(let error): reply.send(.internalServerError, type: "text/plain", text: "cannot report the status: \(error)\n")
                    }
                }
        case 1 where StatusPage.assets[parts[0]] != nil:
            if let asset = StatusPage.assets[parts[0]] { reply.send(.ok, type: asset.type, bytes: asset.bytes, cache: "max-age=60") }
        case 4 where parts[0] == "results" && (parts[3] == "grid.png" || parts[3] == "thumbnail.png"):
            result(job: parts[1], edit: parts[2], thumbnail: parts[3] == "thumbnail.png", reply: reply)
        default:
            reply.send(.notFound, type: "text/plain",
                       text: "not found: the status page is at /, its data at /status.json, the metrics at /metrics\n")
        }
    }

    /// A finished edit's grid, or its thumbnail, read (and made) on the thread pool.
    private func result(job: String, edit: String, thumbnail: Bool, reply: Reply) {
        let shell = sources.shell
        let thumbnails = sources.thumbnails
        shell.eventLoop.submit { shell.value.broker.resultGrid(job: job, edit: edit) }
            .flatMap { grid -> EventLoopFuture<Data?> in
                guard let grid else { return shell.eventLoop.makeSucceededFuture(nil) }
                return NIOThreadPool.singleton.runIfActive(eventLoop: shell.eventLoop) {
                    try thumbnail ? thumbnails.thumbnail(key: job + "/" + edit, grid: grid) : Data(contentsOf: grid)
                }
            }
            .whenComplete { result in
                switch result {
                case .success(let png?): reply.send(.ok, type: "image/png", bytes: Array(png), cache: "max-age=3600")
                case .success(nil): reply.send(.notFound, type: "text/plain", text: "no finished edit '\(edit)' in job '\(job)'\n")
                case .failure(let error): reply.send(.internalServerError, type: "text/plain", text: "cannot read the result: \(error)\n")
                }
            }
    }

    /// Whether a Host header names this machine's loopback (with or without a port).
    static func isLoopback(host header: String) -> Bool {
        var host = header.trimmingCharacters(in: .whitespaces).lowercased()
        if host.hasPrefix("[") {
            host = String(host.dropFirst().prefix { $0 != "]" })
        } else if let colon = host.lastIndex(of: ":") {
            host = String(host[..<colon])
        }
        if host == "localhost" || host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// One response, then the connection closes (Prometheus and the page open one per request).
    private struct Reply: Sendable {
        let channel: Channel
        let headOnly: Bool

        func send(_ status: HTTPResponseStatus, type: String, text: String, headers extra: [(String, String)] = []) {
            send(status, type: type, bytes: Array(text.utf8), headers: extra)
        }

        func send(_ status: HTTPResponseStatus, type: String, bytes: [UInt8], cache: String = "no-store", headers extra: [(String, String)] = []) {
            var headers = HTTPHeaders(extra)
            headers.add(name: "Content-Type", value: type)
            headers.add(name: "Content-Length", value: String(bytes.count))
            headers.add(name: "Cache-Control", value: cache)
            headers.add(name: "X-Content-Type-Options", value: "nosniff")
            headers.add(name: "Content-Security-Policy", value: "default-src 'self'; img-src 'self'; frame-ancestors 'none'")
            headers.add(name: "Referrer-Policy", value: "no-referrer")
            headers.add(name: "Connection", value: "close")
            let head = HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))
            channel.eventLoop.execute {
                channel.write(head, promise: nil)
                if !headOnly { channel.write(HTTPServerResponsePart.body(.byteBuffer(channel.allocator.buffer(bytes: bytes))), promise: nil) }
                channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}
