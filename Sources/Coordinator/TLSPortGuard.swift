import NIOCore
import NIOSSL
import Wire

/// The front of a TLS port's connections: a peer that opens with a TLS handshake record gets
/// TLS (the guard hands its place to the TLS handler); one that opens in plaintext (a worker or
/// client without `--tls-ca`) gets a plaintext error frame saying so, rather than TLS alerts it
/// would read as a frame length, and is closed.
final class TLSPortGuard: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let context: NIOSSLContext
    private let refusal: Refusal
    private var refused = false

    init(context: NIOSSLContext, refusal: Refusal) { (self.context, self.refusal) = (context, refusal) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        let bytes = unwrapInboundIn(data)
        guard let first = bytes.getInteger(at: bytes.readerIndex, as: UInt8.self) else { return }
        // 0x16: a TLS handshake record, the ClientHello.
        guard first == 0x16 else {
            refused = true
            return refusal.refuse(context.channel, WireError(.tlsMismatch, "this coordinator's port takes TLS only: give the worker or client "
                                                             + "--tls-ca (the CA that signed the coordinator's certificate)"))
        }
        do {
            try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: self.context), position: .after(self))
        } catch {
            return context.fireErrorCaught(error)
        }
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
