/// The names a worker's capabilities and an edit's needs are matched by: a model key, and the
/// same key with "@bf16" for edits that run in bfloat16 (which not every CPU offers), so that
/// the coordinator sends each edit to a worker able to run it at its precision.
public enum CapabilityKey {
    public static func key(model: String, precision: Precision) -> String {
        precision == .fp32 ? model : model + "@" + precision.rawValue
    }
}
