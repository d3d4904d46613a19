import NIOCore
import Wire

/// Once the handshake is done, a heartbeat naming the tasks this worker runs every `interval`,
/// until the connection closes: the coordinator renews their leases on it.
final class HeartbeatHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WireMessage
    typealias OutboundOut = WireMessage

    let interval: TimeAmount
    /// The running tasks' ids (called on the channel's event loop).
    let running: @Sendable () -> [String]
    private var beat: RepeatedTask?

    init(interval: TimeAmount, running: @escaping @Sendable () -> [String]) {
        (self.interval, self.running) = (interval, running)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ClientHandshakeHandler.Joined {
            beat?.cancel()
            let channel = context.channel
            beat = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [running] _ in
                channel.writeAndFlush(WireMessage.heartbeat(taskIDs: running()), promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { stop() }

    private func stop() {
        beat?.cancel()
        beat = nil
    }
}
