import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SIGTERM and SIGINT turned into a call instead of the end of the process, so that a cluster
/// node (coordinator or worker) can shut down gracefully: finish or hand back its work, say
/// goodbye, write what it owes. The signals stay ignored after `cancel()`: by then the node is
/// on its way out anyway.
public final class ShutdownSignals: @unchecked Sendable {
    private let sources: [DispatchSourceSignal]

    /// `handler` runs on a global queue, once per signal received.
    public init(_ handler: @escaping @Sendable () -> Void) {
        sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler(handler: handler)
            source.resume()
            return source
        }
    }

    /// Stops calling the handler.
    public func cancel() {
        sources.forEach { $0.cancel() }
    }
}
