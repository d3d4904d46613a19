/// How the edited prompts' self-attention is taken from the source's.
public enum SelfReplaceVariant: String, Sendable, CaseIterable {
    /// Hertz et al.'s: in the conditional half of guidance, in layers of at most
    /// `self_replace_side`^2 queries, for the steps int(start T) ..< int(end T) of T.
    case promptToPrompt = "prompt-to-prompt"
    /// The InstructPix2Pix dataset recipe's (Brooks et al. 2023): in both halves of guidance and
    /// every layer, for the steps i with start <= i / (T - 1) < end (its rule for a threshold p
    /// is i / (T - 1) < p).
    case instructPix2Pix = "instruct-pix2pix"
}

/// How an ancestral scheduler's fresh noise at each step is drawn for the prompts of an edit.
public enum AncestralNoise: String, Sendable, CaseIterable {
    /// One draw, the same for every prompt (as the InstructPix2Pix recipe draws it): the source
    /// row then equals the source prompt's own generation.
    case shared
    /// One draw per prompt, as diffusers' pipelines draw it for a batch.
    case independent
}
