/// The cluster's binary protocol: frames, messages, tensor codec and authentication.
/// Knows nothing of models.
public enum WireProtocol {
    /// Bumped on every incompatible change to frames or messages.
    public static let version: UInt16 = 1
}
