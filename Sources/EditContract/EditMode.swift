/// How the edited prompts' attention relates to the source's.
public enum EditMode: String, Sendable, CaseIterable, Codable {
    /// Word swap: same number of words.
    case replace
    /// Added or removed words: token alignment.
    case refine
    /// The source prompt's own attention, reweighted.
    case reweight
    /// No control: the same seed with the new prompt (the baseline).
    case none
    /// replace when every target has the source's word count, refine otherwise.
    case auto
}
