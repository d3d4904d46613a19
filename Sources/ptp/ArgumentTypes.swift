import ArgumentParser
import EditContract

extension Precision: ExpressibleByArgument {}
extension SelfReplaceVariant: ExpressibleByArgument {}
extension EditRecipe: ExpressibleByArgument {}
extension OutputLayout: ExpressibleByArgument {}
extension AncestralNoise: ExpressibleByArgument {}

/// Two whole numbers given as `A,B` (or `AxB`): SDXL's sizes as HEIGHT,WIDTH and its crop corner
/// as TOP,LEFT.
struct NumberPair: ExpressibleByArgument, Sendable {
    let values: [Int]

    init?(argument: String) {
        let parts = argument.split(whereSeparator: { $0 == "," || $0 == "x" }).compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2 else { return nil }
        values = parts
    }
}
