/// How a real image is turned into starting noise for editing.
public enum InversionMethod: String, Sendable, CaseIterable {
    /// DDIM inversion with the source prompt at guidance 1; editing starts from its last latent.
    /// Drifts at high guidance: the source is not reproduced exactly.
    case ddim
    /// DDIM inversion, then during editing the source branch is put back on the inversion
    /// trajectory after every step (Ju et al. 2023, "Direct Inversion"): the source is
    /// reproduced and the edited prompts follow it through the injected attention.
    case direct
    /// DDIM inversion, then editing with the source prompt as every prompt's negative prompt
    /// (Miyake et al. 2023, "Negative-prompt Inversion"): null-text inversion's optimised
    /// embeddings approximated by the source prompt's, with no optimisation.
    case negativePrompt = "negative-prompt"

    /// The methods, as a fix lists them.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}
