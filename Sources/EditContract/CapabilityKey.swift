/// The names a worker's capabilities and an edit's needs are matched by: a model key, and the
/// same key with "@bf16" for edits that run in bfloat16 (which not every CPU offers), so that
/// the coordinator sends each edit to a worker able to run it at its precision.
public enum CapabilityKey {
    public static func key(model: String, precision: Precision) -> String {
        precision == .fp32 ? model : model + "@" + precision.rawValue
    }

    /// A sampled line's: the model's key and the CLIP model that scores its variants.
    public static func key(model: String, precision: Precision, scorer: String?) -> String {
        let base = key(model: model, precision: precision)
        return scorer.map { base + scorerSeparator + $0 } ?? base
    }

    /// The model's key and the scorer of a sampled line's key; nil for any other.
    public static func scorer(of key: String) -> (model: String, scorer: String)? {
        guard let range = key.range(of: scorerSeparator) else { return nil }
        return (String(key[..<range.lowerBound]), String(key[range.upperBound...]))
    }

    static let scorerSeparator = "+scorer:"
}
