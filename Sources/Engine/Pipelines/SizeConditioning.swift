import EditContract

/// SDXL's micro-conditioning, as diffusers' `original_size` and `crops_coords_top_left`: the
/// size a training image had before it was resized, and the corner it was cropped at (the
/// target size is always the output's). Only SDXL learnt these, so each value remembers whether
/// it was given: other models refuse a given one rather than ignore it.
struct SizeConditioning: Sendable, Hashable {
    /// [height, width]; nil: not given (the output's size, as diffusers defaults it).
    var originalSize: [Int]?
    /// [top, left]; nil: not given (0, 0).
    var cropTopLeft: [Int]?

    init(originalSize: [Int]? = nil, cropTopLeft: [Int]? = nil) {
        self.originalSize = originalSize
        self.cropTopLeft = cropTopLeft
    }

    /// The values given, each under the edit spec's key for it, in the spec's order.
    var given: [(key: EditSpec.Key, value: [Int])] {
        [(EditSpec.Key.originalSize, originalSize), (.cropsCoordsTopLeft, cropTopLeft)].compactMap { key, value in value.map { (key, $0) } }
    }

    /// diffusers' `add_time_ids` for `count` prompts of an image of `height` x `width`:
    /// [count, 6], every row the original size, the crop corner and the target size (the same
    /// for guidance's unconditional half). The values were checked to be pairs
    /// (`SDXLConditioning.check`).
    func timeIDs(height: Int, width: Int, count: Int) -> Tensor {
        let original = originalSize ?? [height, width], crop = cropTopLeft ?? [0, 0]
        let row = [original[0], original[1], crop[0], crop[1], height, width].map(Float.init)
        return Tensor(shape: [count, row.count], values: Array(Array(repeating: row, count: count).joined()))
    }
}
