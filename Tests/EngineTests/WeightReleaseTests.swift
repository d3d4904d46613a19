import EditContract
@testable import Engine
import Foundation
import Testing

@Suite("a process's last edit returns the packed weights it no longer needs")
struct WeightReleaseTests {
    @Test("releasing the text encoders' and UNet's weights frees their packed copies and changes no pixel")
    func releasingWeights() throws {
        // A model of its own: releasing weights while another test's edit runs on them is not allowed.
        let model = try DiffusionModel(directory: Fixtures.url("p2p-sd"))
        var spec = EditSpec(id: "release", source: "a cat riding a bicycle", targets: ["a dog riding a bicycle"])
        (spec.steps, spec.height, spec.width, spec.seed) = (3, 128, 128, 8888)
        let editor = PromptToPromptEditor(model: model)
        let kept = try editor.run(spec)
        #expect(model.textEncoderWeights.packedBytes > 0)
        #expect(model.denoiserWeights.packedBytes > 0)
        let released = try editor.run(spec, releasingWeights: true)
        #expect(model.textEncoderWeights.packedBytes == 0)
        #expect(model.denoiserWeights.packedBytes == 0)
        #expect(released.images == kept.images)
        // Released weights are packed again when used again, to the same bits.
        #expect(try editor.run(spec).images == kept.images)
        #expect(model.denoiserWeights.packedBytes > 0)
    }
}
