/// A named set of defaults for a sampled line.
public enum EditRecipe: String, Sendable, CaseIterable {
    /// The InstructPix2Pix training set's (Brooks et al. 2023, its generate_img_dataset.py):
    /// Euler ancestral sampling over 100 steps with one ancestral noise for both prompts, the
    /// source's self-attention in every layer and both guidance halves for the first p of the
    /// steps, p ~ U(0.1, 0.9) and guidance ~ U(7.5, 15) per variant, no cross-attention
    /// replacement; 100 variants, filtered at CLIP text 0.2, direction 0.2 and image 0.7, the
    /// best 4 by direction kept.
    case instructPix2Pix = "instruct-pix2pix"

    /// Fills what the spec's writer did not set (`given`: the keys it set).
    func apply(to spec: inout EditSpec, given: Set<EditSpec.Key>) throws {
        switch self {
        case .instructPix2Pix:
            if !given.contains(.scheduler) { spec.scheduler = try SchedulerChoice(parsing: "euler-a") }
            if !given.contains(.steps) { spec.steps = 100 }
            if !given.contains(.selfReplaceVariant) { spec.selfReplaceVariant = .instructPix2Pix }
            if !given.contains(.crossReplace) { spec.crossReplace = CrossReplaceSchedule(StepRange(end: 0)) }
            if !given.contains(.vary) { spec.vary = .instructPix2Pix }
            var plan = spec.sampling ?? SamplingPlan(samples: 100)
            if !given.contains(.filter) { plan.filter = .instructPix2Pix }
            if !given.contains(.keep) { plan.keep = 4 }
            spec.sampling = plan
        }
    }
}
