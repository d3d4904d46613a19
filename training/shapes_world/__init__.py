"""The synthetic "shapes world": scene grammar, exact renderer, detectors, tokenizer and training
of the embedded default model (a base text-to-image stage and a super-resolution stage)."""
