import Foundation
import FuzzTargets
import Testing

/// Inputs that once broke a reader (found by fuzz/run, or by hand), replayed through the same
/// entry points the fuzzer drives: each must now be refused or read, never trap.
@Suite("fuzz regressions")
struct FuzzRegressionTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/fuzz")

    @Test("every committed input of every target runs without a trap", arguments: FuzzTarget.allCases)
    func replay(_ target: FuzzTarget) throws {
        let folder = Self.root.appendingPathComponent(target.rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path))?.sorted() ?? []
        for name in names {
            target.run(Array(try Data(contentsOf: folder.appendingPathComponent(name))))
        }
        print("[fuzz] \(target.rawValue): \(names.count) regression inputs replayed")
    }
}
