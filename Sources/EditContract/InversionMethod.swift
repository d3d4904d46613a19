/// How a real image is turned into starting noise for editing.
public enum InversionMethod: String, Sendable, CaseIterable {
    /// DDIM inversion with the source prompt at guidance 1; editing starts from its last latent.
    /// Drifts at high guidance: the source is not reproduced exactly.
    case ddim
    /// DDIM inversion, then during editing the source branch is put back on the inversion
    /// trajectory after every step (Ju et al. 2023, "Direct Inversion"): the source is
    /// reproduced and the edited prompts follow it through the injected attention.
    case direct
}
