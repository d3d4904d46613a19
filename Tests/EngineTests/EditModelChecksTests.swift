import EditContract
@testable import Engine
import Foundation
import Testing

@Suite("edit specs: the checks that need the model")
struct EditModelChecksTests {
    func parse(_ text: String) throws -> EditSpec { try EditSpec(json: try JSONValue.parse(Data(text.utf8))) }

    @Test("model-dependent checks: replace with unequal words, absent words, long prompts")
    func modelChecks() throws {
        let editor = PromptToPromptEditor(model: try DiffusionModel(directory: Fixtures.url("p2p-sd")))
        func check(_ text: String) -> EditError? {
            do { try editor.validate(try parse(text)); return nil } catch { return error as? EditError }
        }
        #expect(check(#"{"id": "a", "source": "a red circle", "targets": ["a big red circle"], "mode": "replace", "height": 128, "width": 128}"#)?.field == "mode")
        // Repeated spaces do not make words: these have three words each.
        #expect(check(#"{"id": "a", "source": "a  red circle", "targets": ["a red  square "], "mode": "replace", "height": 128, "width": 128}"#) == nil)
        #expect(try parse(#"{"id": "a", "source": "a  red circle", "targets": ["a red  square "]}"#).resolvedMode == .replace)
        #expect(check(#"{"id": "a", "source": "a red circle", "targets": ["a red square"], "blend": [["circle"], ["circle"]], "height": 128, "width": 128}"#)?.field == "blend[1]")
        #expect(check(#"{"id": "a", "source": "a red circle", "targets": ["a red square"], "reweight": {"circle": 2}, "height": 128, "width": 128}"#)?.field == "reweight.circle")
        // With several edited prompts, a word reweights those that have it.
        #expect(check(#"{"id": "a", "source": "a red circle", "targets": ["a red square", "a blue circle"], "reweight": {"square": 2}, "height": 128, "width": 128}"#) == nil)
        #expect(check(#"{"id": "a", "source": "a red circle", "targets": ["a red square"], "cross_replace": {"blue": 0.2}, "height": 128, "width": 128}"#)?.field == "cross_replace.blue")
        let long = String(repeating: "red ", count: 80)
        #expect(check(#"{"id": "a", "source": "a red circle", "targets": ["\#(long)"], "height": 128, "width": 128}"#)?.field == "targets[0]")
        #expect(check(#"{"id": "a", "source": "a red circle", "targets": ["a red square"], "negative_prompt": "\#(long)", "height": 128, "width": 128}"#)?.field == "negative_prompt")
        #expect(check(#"{"id": "a", "source": "a red circle", "targets": ["a red square"], "height": 128, "width": 128}"#) == nil)
        // Matching ignores case and trailing punctuation.
        #expect(check(#"{"id": "a", "source": "A red Circle.", "targets": ["A red Square."], "blend": [["circle"], ["square"]], "height": 128, "width": 128}"#) == nil)
    }
}
