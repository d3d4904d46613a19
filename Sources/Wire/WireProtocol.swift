/// The cluster's binary protocol: length-prefixed frames carrying typed messages, a handshake
/// authenticated with the cluster's shared secret, and a compressed tensor codec. It knows
/// nothing of models: tensors are shapes and bytes, edits are the edit contract's envelopes.
public enum WireProtocol {
    /// Bumped on every incompatible change to frames or messages (2: mutual authentication;
    /// 3: task payloads carry edit specs as JSON objects, not as strings of JSON; 4: typed work,
    /// results and capabilities, edits as envelopes; 5: sampled lines, their variants and scores;
    /// 6: pictures carried with batches, inversions reported; 7: submissions carry the client's
    /// folder for relative outputs, acceptances the folder the job writes to).
    public static let version: UInt16 = 7
    /// Largest frame accepted before the peer has authenticated (hello and proof are small).
    public static let unauthenticatedFrameLimit = 64 << 10
    /// Default largest frame once authenticated.
    public static let defaultFrameLimit = 256 << 20
    /// Default largest decompressed tensor, and the most one message's tensors may hold in all.
    public static let defaultTensorLimit = 1 << 30
}

/// Why a frame or message was refused. Each is answered with an error frame and a close.
public struct WireError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Code: UInt16, Sendable {
        case malformed = 1
        case frameTooLarge = 2
        case unknownMessage = 3
        case badVersion = 4
        case authenticationFailed = 5
        case unexpectedMessage = 6
        case tensorRejected = 7
        case internalError = 8
        case rejected = 9
        /// One side speaks TLS and the other does not, or a certificate is not trusted.
        case tlsMismatch = 10
        /// The credential given does not allow what was asked (a worker's credential used to submit).
        case forbidden = 11
        /// A limit of the coordinator's was reached (queued edits, bytes of pictures, line size).
        case overLimit = 12
    }
    public let code: Code
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code): \(reason)" }
}
