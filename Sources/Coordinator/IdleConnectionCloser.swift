import NIOCore

/// Closes a connection that has sent nothing for its idle time (after `IdleStateHandler`), so
/// that idle connections cannot hold the coordinator's file descriptors.
final class IdleConnectionCloser: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
