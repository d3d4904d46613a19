/// SDXL's micro-conditioning, as diffusers' `original_size`, `crops_coords_top_left` and
/// `target_size`: the size a training image had before it was resized, the corner it was
/// cropped at, and the size asked for. SDXL learnt these; other models ignore them.
public struct SizeConditioning: Sendable, Equatable {
    /// [height, width]; nil: the output's size (diffusers' default).
    public var originalSize: [Int]?
    /// [top, left]
    public var cropTopLeft: [Int]
    /// [height, width]; nil: the output's size.
    public var targetSize: [Int]?

    public init(originalSize: [Int]? = nil, cropTopLeft: [Int] = [0, 0], targetSize: [Int]? = nil) {
        self.originalSize = originalSize
        self.cropTopLeft = cropTopLeft
        self.targetSize = targetSize
    }

    /// The six time ids of an image of `height` x `width`: original size, crop corner, target
    /// size (diffusers' `add_time_ids`, the same for the negative prompt).
    public func timeIDs(height: Int, width: Int) -> [Float] {
        ((originalSize ?? [height, width]) + cropTopLeft + (targetSize ?? [height, width])).map(Float.init)
    }
}
