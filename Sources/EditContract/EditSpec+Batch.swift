extension EditSpec {
    /// A batch as it travels to the coordinator: a JSON array of specs, each checked, ids
    /// unique. Errors name the edit by position and id.
    public static func batch(json text: String) throws -> [EditSpec] {
        let parsed: JSONValue
        do { parsed = try StrictJSON.parse(text) } catch {
            throw EditError(field: "edits", problem: "is not JSON (\(error))", fix: "send a list of edit objects")
        }
        guard let items = parsed.arrayValue else { throw EditError(field: "edits", problem: "is not a JSON array", fix: "send a list of edit objects") }
        guard !items.isEmpty else { throw EditError(field: "edits", problem: "is empty", fix: "give at least one edit") }
        var ids = Set<String>()
        return try items.enumerated().map { index, item in
            let spec: EditSpec
            do { spec = try EditSpec(json: item) } catch let error as EditError {
                let id = item["id"]?.stringValue.map { " ('\($0)')" } ?? ""
                throw EditError(field: "edits[\(index)]\(id).\(error.field)", problem: error.problem, fix: error.fix)
            }
            guard ids.insert(spec.id).inserted else {
                throw EditError(field: "edits[\(index)].id", problem: "'\(spec.id)' is used by an earlier edit", fix: "give every edit its own id")
            }
            return spec
        }
    }
}
