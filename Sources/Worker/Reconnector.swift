import Logging
import NIOCore

/// Keeps one connection open: connects, and once a connection fails or closes connects again
/// after a delay that doubles from `initialBackoff` up to `maximumBackoff` (and starts over
/// once a connection is welcomed), until stopped. Confined to `loop`.
final class Reconnector: @unchecked Sendable {
    let loop: EventLoop
    let initialBackoff: TimeAmount
    let maximumBackoff: TimeAmount
    private let connect: () -> EventLoopFuture<Channel>
    private let logger: Logger
    private var backoff: TimeAmount
    private var stopped = false
    private var pending: Scheduled<Void>?
    /// The connection open now, if any.
    private(set) var channel: Channel?

    /// `connect` opens a connection (with its pipeline); this type only decides when.
    init(loop: EventLoop, initialBackoff: TimeAmount = .milliseconds(500), maximumBackoff: TimeAmount,
         logger: Logger, connect: @escaping () -> EventLoopFuture<Channel>) {
        (self.loop, self.initialBackoff, self.maximumBackoff, self.logger, self.connect) = (loop, initialBackoff, maximumBackoff, logger, connect)
        backoff = initialBackoff
    }

    /// The delay before the next attempt.
    var nextDelay: TimeAmount { backoff }

    func start() {
        loop.preconditionInEventLoop()
        guard !stopped, channel == nil, pending == nil else { return }
        connect().whenComplete { result in
            switch result {
            case .success(let channel):
                guard !self.stopped else { return channel.close(promise: nil) }
                self.channel = channel
                channel.closeFuture.whenComplete { _ in
                    guard self.channel === channel else { return }
                    self.channel = nil
                    self.retry()
                }
            case .failure(let error):
                self.logger.warning("cannot reach the coordinator", metadata: ["error": "\(error)", "retry in": "\(self.backoff.nanoseconds / 1_000_000) ms"])
                self.retry()
            }
        }
    }

    /// The connection proved itself: the next loss retries quickly again.
    func resetBackoff() { backoff = initialBackoff }

    /// No more connections; the open one is closed.
    func stop() {
        stopped = true
        pending?.cancel()
        pending = nil
        channel?.close(promise: nil)
    }

    private func retry() {
        guard !stopped else { return }
        let delay = backoff
        backoff = .nanoseconds(min(backoff.nanoseconds * 2, maximumBackoff.nanoseconds))
        pending = loop.scheduleTask(in: delay) {
            self.pending = nil
            self.start()
        }
    }
}
