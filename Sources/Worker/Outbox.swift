import NIOCore
import Wire

/// What the worker sends the coordinator: at once while a welcomed connection is open, else
/// kept for the next one, in order. Results and failures are never dropped; progress is not
/// worth keeping. Confined to the link's event loop.
final class Outbox {
    private var channel: Channel?
    /// Messages waiting for a connection.
    private(set) var waiting: [WireMessage] = []

    /// A connection was welcomed: what waited goes out first.
    func opened(_ channel: Channel) {
        self.channel = channel
        for message in waiting { channel.write(message, promise: nil) }
        waiting.removeAll()
        channel.flush()
    }

    func closed() { channel = nil }

    var isOpen: Bool { channel != nil }

    func send(_ message: WireMessage) {
        if let channel {
            channel.writeAndFlush(message, promise: nil)
        } else if case .progress = message {
            return
        } else {
            waiting.append(message)
        }
    }
}
