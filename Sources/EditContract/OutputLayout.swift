/// How a job's results are laid out in its output folder (`ptp submit --dataset`).
public enum OutputLayout: String, Sendable, CaseIterable {
    /// ptp's own: a folder per edit (or per sampled line) and manifest.jsonl.
    case ptp
    /// The InstructPix2Pix generated dataset's: a folder per caption pair with prompt.json,
    /// `<seed>_0.jpg`, `<seed>_1.jpg` and metadata.jsonl of the kept variants, seeds.json at the
    /// top (and ptp's manifest.jsonl beside them).
    case instructPix2Pix = "instruct-pix2pix"
    /// The InstructPix2Pix layout plus Parquet shards under data/ with the columns of the
    /// published instructpix2pix-clip-filtered set, as Hugging Face `datasets` loads them.
    case hf
}
