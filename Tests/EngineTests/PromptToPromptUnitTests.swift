import EditContract
@testable import Engine
import Foundation
import Testing

@Suite("Prompt-to-Prompt words, alignment, replacement matrices and schedules (spec section 7)")
struct PromptToPromptUnitTests {
    let tokenizer = Fixtures.sdTokenizer

    func words(_ prompt: String) -> PromptWords { PromptWords(prompt, tokenizer: tokenizer) }

    func ids(_ prompt: String) -> [Int] { [tokenizer.startToken] + tokenizer.encode(prompt) + [tokenizer.endToken] }

    @Test("word indices")
    func wordIndices() {
        #expect(words("A painting of a squirrel eating a burger").tokens(of: "squirrel") == [5])
        #expect(words("A painting of a squirrel eating a lasagne").tokens(of: "lasagne") == [8, 9])
        #expect(words("fried potatos").tokens(of: "potatos") == [2, 3])
        #expect(words("pea soup with croutons").tokens(of: "croutons") == [4, 5, 6])
        // Ours: case-insensitive, trailing punctuation ignored, repeated words all selected.
        #expect(words("A painting of a squirrel eating a burger.").tokens(of: "Burger") == [8])
        #expect(words("A painting of a squirrel eating a burger.").tokens(atWord: 7) == [8, 9])
        #expect(words("a  painting of   a squirrel").tokens(of: "squirrel") == [5])
        #expect(words("wait... what?!").tokens(of: "what").count == 1)
        #expect(words("a cat and a cat").tokens(of: "cat") == [2, 5])
        #expect(words("a  cat").tokens(of: "cat") == [2])
        #expect(words("a cat").tokens(of: "dog").isEmpty)
        #expect(words("a photo of a neoclassical house").tokens(atWord: 4) == [5, 6])
    }

    @Test("refinement alignment")
    func alignment() {
        let a = TokenAlignment(source: ids("A painting of a squirrel eating a burger"),
                               target: ids("A neoclassical painting of a squirrel eating a burger"))
        #expect(Array(a.mapping[0..<14]) == [0, 1, -1, -1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13])
        #expect(Array(a.weights[0..<14]) == [1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
        let b = TokenAlignment(source: ids("a photo of a house on a mountain"), target: ids("a photo of a house on a mountain at fall"))
        #expect(Array(b.mapping[0..<14]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, -1, -1, 9, 12, 13])
        let c = TokenAlignment(source: ids("soup"), target: ids("pea soup with croutons"))
        #expect(Array(c.mapping[0..<10]) == [0, -1, 1, -1, -1, -1, -1, 2, 8, 9])
        let d = TokenAlignment(source: ids("potatos"), target: ids("fried potatos"))
        #expect(Array(d.mapping[0..<7]) == [0, -1, 1, 2, 3, 5, 6])
        // Identical prompts align to the identity.
        let e = TokenAlignment(source: ids("a cat"), target: ids("a cat"))
        #expect(e.mapping == Array(0..<77) && e.weights.allSatisfy { $0 == 1 })
    }

    @Test("replacement matrices, including differing token counts with the M[i][j] correction")
    func replacement() throws {
        let lion = try ReplacementMatrix(source: words("A painting of a squirrel eating a burger"),
                                         target: words("A painting of a lion eating a burger"))
        for i in 0..<77 { for j in 0..<77 { #expect(lion[i, j] == (i == j ? 1 : 0)) } }

        let lasagne = try ReplacementMatrix(source: words("A painting of a squirrel eating a burger"),
                                            target: words("A painting of a squirrel eating a lasagne"))
        for i in 0..<8 { #expect(lasagne[i, i] == 1) }
        #expect(lasagne[8, 8] == 0.5 && lasagne[8, 9] == 0.5)
        // The source EOS (9) maps to the target EOS (10), and so on, with each row summing to 1.
        #expect(lasagne[9, 10] == 1 && lasagne[10, 11] == 1 && lasagne[9, 9] == 0 && lasagne[75, 76] == 1)
        for i in 0..<76 { #expect(abs((0..<77).reduce(Float(0)) { $0 + lasagne[i, $1] } - 1) < 1e-6, "row \(i)") }

        let error = #expect(throws: EditError.self) {
            try ReplacementMatrix(source: words("a cat"), target: words("a black cat"))
        }
        #expect(error?.field == "mode" && error?.fix.contains("refine") == true)
    }

    @Test("cross and self replacement schedules over T + 1 rows")
    func schedules() {
        let targets = [words("A painting of a lion eating a burger")]
        let plain = CrossReplaceSchedule(StepRange(end: 0.8)).table(steps: 50, targets: targets)
        #expect(plain.count == 51)
        #expect((0..<51).filter { plain[$0][0][3] == 1 } == Array(0...39))
        let perWord = CrossReplaceSchedule(StepRange(end: 1), words: ["lion": StepRange(end: 0.4)]).table(steps: 50, targets: targets)
        #expect((0..<51).filter { perWord[$0][0][5] == 1 } == Array(0...19))
        #expect((0..<51).filter { perWord[$0][0][4] == 1 } == Array(0...50))
        #expect((0..<51).filter { perWord[$0][0][76] == 1 } == Array(0...50))
        let window = CrossReplaceSchedule(StepRange(start: 0.2, end: 0.5)).table(steps: 10, targets: targets)
        #expect((0..<11).filter { window[$0][0][0] == 1 } == [2, 3, 4])
        #expect(StepRange(end: 0.4).steps(of: 50) == 0..<20)
        #expect(StepRange(start: 0.1, end: 0.58).steps(of: 50) == 5..<28)  // int(50 * 0.58) = 28 in floating point
    }
}

@Suite("spatial replacement")
struct SpatialReplaceTests {
    @Test("edited latents take the source's for the first (1 - stop) of the steps")
    func spatialReplace() {
        let controller = SpatialReplaceController(stop: 0.3, steps: 50)
        #expect(controller.replaceUntil == 35)
        var latents = Tensor(shape: [3, 1, 1, 2], values: [1, 2, 3, 4, 5, 6])
        controller.endStep(33, latents: &latents)
        #expect(latents.scalars == [1, 2, 1, 2, 1, 2])
        var late = Tensor(shape: [2, 1, 1, 1], values: [1, 9])
        controller.endStep(34, latents: &late)
        #expect(late.scalars == [1, 9])
    }
}
