import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The metrics port's HTTP server: `/metrics` for Prometheus, and the live status page at `/`
/// with the JSON it polls (`/status.json`) and the thumbnails and grids of the latest results.
/// It is unauthenticated, so it listens on loopback unless `--metrics-host` says otherwise; a
/// result is named by its job and edit id, looked up in the scheduler's records, so no path
/// from a request reaches the disk.
final class MonitorEndpoint: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// What the endpoint reads: the metrics (thread-safe), the scheduler (on its loop) and the
    /// thumbnails (made off the loop).
    struct Sources: Sendable {
        let metrics: CoordinatorMetrics
        let scheduler: NIOLoopBound<SchedulerShell>
        let thumbnails: ThumbnailCache
    }

    private let sources: Sources
    private var request: HTTPRequestHead?

    init(sources: Sources) { self.sources = sources }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let request else { return }
            self.request = nil
            route(request, channel: context.channel)
        }
    }

    private func route(_ request: HTTPRequestHead, channel: Channel) {
        let reply = Reply(channel: channel, headOnly: request.method == .HEAD)
        guard request.method == .GET || request.method == .HEAD else {
            return reply.send(.methodNotAllowed, type: "text/plain", text: "only GET and HEAD are served here\n")
        }
        let path = String(request.uri.prefix { $0 != "?" && $0 != "#" })
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map { $0.removingPercentEncoding ?? String($0) }
        switch parts.count {
        case 0:
            reply.send(.ok, type: "text/html; charset=utf-8", bytes: StatusPage.html)
        case 1 where parts[0] == "metrics":
            reply.send(.ok, type: "text/plain; version=0.0.4; charset=utf-8", text: sources.metrics.exposition())
        case 1 where parts[0] == "status.json":
            let scheduler = sources.scheduler
            scheduler.eventLoop.submit { try JSONEncoder.wire.encode(scheduler.value.core.dashboard()) }
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
        let scheduler = sources.scheduler
        let thumbnails = sources.thumbnails
        scheduler.eventLoop.submit { scheduler.value.core.resultGrid(job: job, edit: edit) }
            .flatMap { grid -> EventLoopFuture<Data?> in
                guard let grid else { return scheduler.eventLoop.makeSucceededFuture(nil) }
                return NIOThreadPool.singleton.runIfActive(eventLoop: scheduler.eventLoop) {
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

    /// One response, then the connection closes (Prometheus and the page open one per request).
    private struct Reply: Sendable {
        let channel: Channel
        let headOnly: Bool

        func send(_ status: HTTPResponseStatus, type: String, text: String) {
            send(status, type: type, bytes: Array(text.utf8))
        }

        func send(_ status: HTTPResponseStatus, type: String, bytes: [UInt8], cache: String = "no-store") {
            var headers = HTTPHeaders()
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
