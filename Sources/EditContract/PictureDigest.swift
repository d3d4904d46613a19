/// How the cluster names a picture that travels with a batch: the SHA-256 of its file's bytes,
/// as 64 lowercase hexadecimal digits. One picture edited many times is sent and kept once.
public enum PictureDigest {
    /// Whether `text` is a digest as written here (a file name in the coordinator's state folder
    /// is made from it, so nothing else may pass).
    public static func isWellFormed(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}
