import EditContract
import Engine
import Foundation
import Imaging
import NIOCore
import Wire

/// The readers of untrusted bytes, as fuzzing drives them: each takes any input, and may refuse
/// it with an error but never trap. The fuzzer (`fuzz/`, libFuzzer) runs them on generated
/// inputs; `Tests/EngineTests/FuzzRegressionTests` replays the inputs that once broke one.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A frame's body: every message of the protocol, tensors included.
    case frame
    /// One tensor in the wire codec (raw or zstd, shuffled or not).
    case tensor
    /// A hand-written edit spec or batch: strict JSON, the spec's checks, its JSON round trip.
    case editSpec = "edit-spec"
    /// A safetensors file: header, entries, every tensor read as float32.
    case safetensors
    /// A PNG file.
    case png
    /// A JPEG file, its EXIF orientation included.
    case jpeg

    /// The limit on decompressed tensor bytes while fuzzing (the wire's default is 1 GiB).
    static let tensorLimit = 16 << 20

    public func run(_ input: [UInt8]) {
        switch self {
        case .frame:
            var buffer = ByteBuffer(bytes: input)
            _ = try? WireMessage.decode(&buffer, codec: TensorCodec(limit: Self.tensorLimit), tensorBytes: Self.tensorLimit)
        case .tensor:
            var buffer = ByteBuffer(bytes: input)
            _ = try? TensorCodec(limit: Self.tensorLimit).decode(from: &buffer)
        case .editSpec:
            let text = String(decoding: input, as: UTF8.self)
            _ = try? EditSpec.batch(json: text)
            guard let json = try? StrictJSON.parse(text), let spec = try? EditSpec(json: json) else { return }
            // What a spec writes, it reads back as itself.
            guard let again = try? EditSpec(json: spec.json), again == spec else {
                fatalError("edit spec does not round-trip through its JSON: \(text)")
            }
        case .safetensors:
            let url = Self.scratch.appendingPathComponent("input-\(getpid()).safetensors")
            guard (try? Data(input).write(to: url)) != nil else { return }
            defer { try? FileManager.default.removeItem(at: url) }
            guard let file = try? SafeTensorsFile(url: url) else { return }
            for name in file.tensorNames { _ = try? file.tensor(name) }
        case .png:
            _ = try? PNGCodec.decode(Data(input))
        case .jpeg:
            _ = try? JPEGCodec.decode(Data(input))
        }
    }

    /// Memory-backed when the system has it: a safetensors input is a file.
    static let scratch: URL = {
        let shm = URL(fileURLWithPath: "/dev/shm")
        return FileManager.default.isWritableFile(atPath: shm.path) ? shm : FileManager.default.temporaryDirectory
    }()
}
