import Foundation
import Imaging
import Wire

/// The pictures a batch names, sent to the coordinator before the batch: only those it lacks,
/// one at a time, each answered once it is on the coordinator's disk. After that the files may
/// go: the job no longer needs them.
struct PictureUpload {
    /// Paths by digest, as `BatchFile` read them.
    let pictures: [String: URL]

    func send(through client: CoordinatorClient) throws {
        guard !pictures.isEmpty else { return }
        let asked = pictures.keys.sorted()
        let answer = try client.request(.pictureQuery(digests: asked))
        guard case .picturesMissing(let missing) = answer else {
            if case .error(_, let reason) = answer { throw CommandError("the coordinator refused the batch's pictures: \(reason)") }
            throw CommandError("the coordinator did not say which pictures it lacks (it answered \(answer.name))")
        }
        var sentBytes = 0
        for (number, digest) in missing.enumerated() {
            guard let url = pictures[digest] else { continue }
            let bytes = [UInt8](try PictureFile.bytes(of: url))
            // Read again to send: a file changed since the batch was checked is not sent as it was.
            guard CarriedPicture.digest(of: bytes) == digest else {
                throw CommandError("\(url.path) changed while the batch was being submitted; submit it again")
            }
            switch try client.request(.picture(CarriedPicture(digest: digest, bytes: bytes)), timeout: 120) {
            case .pictureKept(let kept) where kept == digest:
                sentBytes += bytes.count
            case .error(_, let reason):
                throw CommandError("the coordinator refused \(url.path): \(reason)")
            case let other:
                throw CommandError("unexpected answer to a picture: \(other.name)")
            }
            if missing.count >= 10 && (number + 1) % 10 == 0 { note("pictures sent: \(number + 1) of \(missing.count)") }
        }
        note("pictures: \(pictures.count) named, \(missing.count) sent (\(sentBytes >> 10) KB), \(pictures.count - missing.count) already on the coordinator")
    }
}
