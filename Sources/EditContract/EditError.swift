/// Why an edit cannot be built from its prompts, naming the field and the fix.
public struct EditError: Error, CustomStringConvertible, Equatable {
    public let field: String
    public let problem: String
    public let fix: String
    public init(field: String, problem: String, fix: String) {
        (self.field, self.problem, self.fix) = (field, problem, fix)
    }
    public var description: String { "\(field): \(problem); \(fix)" }
}
