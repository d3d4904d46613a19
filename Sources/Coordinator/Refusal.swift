import Logging
import NIOCore
import Wire

/// Refusing a connection: an error frame, then a close, with the reason logged and counted.
struct Refusal: Sendable {
    let metrics: CoordinatorMetrics
    let logger: Logger

    func refuse(_ channel: Channel, _ error: WireError) {
        metrics.rejectedConnections.increment()
        logger.warning("connection refused", metadata: ["reason": "\(error.reason)", "code": "\(error.code)",
                                                        "peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")"])
        channel.writeAndFlush(WireMessage.error(code: error.code.rawValue, reason: error.reason)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

extension WireError {
    /// The error frame a failure while reading a connection is answered with.
    init(refusing error: Error) {
        if let wire = error as? WireError {
            self = wire
        } else if error is ByteToMessageDecoderError {
            self.init(.malformed, "\(error)")
        } else {
            self.init(.internalError, "\(error)")
        }
    }
}
