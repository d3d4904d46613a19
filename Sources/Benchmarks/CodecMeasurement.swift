import EditContract
import Engine
import Foundation
import NIOCore
import Wire

/// The wire's tensor codec on real stage-1 outputs (`ptp bench codec`): compression ratio and
/// speed for each zstd level, with and without byte shuffling, in float32 and float16.
public struct CodecMeasurement {
    public var model: DiffusionModel
    /// Edits whose stage-1 outputs are measured, and their steps (nil for the model's).
    public var edits: Int
    public var steps: Int?

    public init(model: DiffusionModel, edits: Int, steps: Int?) {
        (self.model, self.edits, self.steps) = (model, edits, steps)
    }

    /// One line per setting, through `report`.
    public func run(report: (String) -> Void) throws {
        let editor = PromptToPromptEditor(model: model)
        let prompts = [("a red circle on a blue background", "a green circle on a blue background"),
                       ("a big yellow triangle on a black background", "a big yellow square on a black background"),
                       ("a small white square on a striped purple background", "a small white square on a dotted purple background"),
                       ("a blue circle and a red triangle on a white background", "a blue circle and a green triangle on a white background")]
        var tensors: [TensorPayload] = []
        for i in 0..<edits {
            let (source, target) = prompts[i % prompts.count]
            var spec = EditSpec(id: "codec-\(i)", source: source, targets: [target])
            spec.seed = UInt64(i)
            spec.steps = steps
            try spec.validate()
            let stage = try editor.runStageOne(spec)
            tensors.append(TensorPayload(name: spec.id, shape: stage.output.shape, floats: stage.output.scalars))
        }
        let rawBytes = tensors.reduce(0) { $0 + $1.bytes.count }
        report("stage-1 outputs: \(tensors.count) tensors of shape \(tensors[0].shape), \(rawBytes) bytes as float32, model \(model.identifier)")
        report("transport  codec         shuffle  ratio   encode MB/s  decode MB/s  exact")
        for half in [false, true] {
            let payloads = half ? tensors.map { $0.toFloat16() } : tensors
            for level in [nil, 1, 3, 9, 19] as [Int32?] {
                for shuffle in [false, true] where level != nil || !shuffle {
                    let codec = TensorCodec(zstdLevel: level, shuffle: shuffle)
                    var encoded: [ByteBuffer] = []
                    let encodeStart = Date()
                    for _ in 0..<5 {
                        encoded = try payloads.map { tensor in
                            var buffer = ByteBuffer()
                            try codec.encode(tensor, into: &buffer)
                            return buffer
                        }
                    }
                    let encodeSeconds = Date().timeIntervalSince(encodeStart) / 5
                    let decodeStart = Date()
                    var decoded: [TensorPayload] = []
                    for _ in 0..<5 {
                        decoded = try encoded.map { var copy = $0; return try codec.decode(from: &copy) }
                    }
                    let decodeSeconds = Date().timeIntervalSince(decodeStart) / 5
                    let size = encoded.reduce(0) { $0 + $1.readableBytes }
                    let exact = zip(decoded, tensors).allSatisfy { $0.floats == $1.floats }
                    func pad(_ text: String, _ width: Int) -> String { text.padding(toLength: width, withPad: " ", startingAt: 0) }
                    report(pad(half ? "fp16" : "fp32", 11) + pad(level.map { "zstd \($0)" } ?? "raw", 14) + pad(shuffle ? "yes" : "no", 9)
                          + String(format: "%5.2f   %11.0f  %11.0f  ", Double(rawBytes) / Double(size), Double(rawBytes) / encodeSeconds / 1e6,
                                   Double(rawBytes) / decodeSeconds / 1e6) + (exact ? "yes" : "no"))
                }
            }
        }
    }
}
