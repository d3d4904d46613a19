/// How an edit ran: the model, the mode after `auto` was decided, and the sampling settings its
/// stage 1 resolved (the model's recommendations filling what the spec left out). A worker's
/// stage-1 result carries it, the coordinator's journal keeps it, a manifest line reports it.
public struct EditRun: Sendable, Equatable {
    /// The model that ran (its identifier: folder name and weights hash).
    public var model: String
    public var mode: EditMode
    public var settings: Settings
    /// How a real picture's inversion was had; nil for a generated edit.
    public var inversion: Inversion?

    /// A real-image edit's inversion: taken from the worker's cache (no inversion steps run) or
    /// run, and the seconds it took.
    public struct Inversion: Sendable, Equatable, Codable {
        public var cached: Bool
        public var seconds: Double

        public init(cached: Bool, seconds: Double) {
            (self.cached, self.seconds) = (cached, seconds)
        }
    }

    /// The sampling settings, as a manifest line's `settings` writes them.
    public struct Settings: Sendable, Equatable, Codable {
        public var steps: Int
        public var guidance: Double
        public var height: Int
        public var width: Int
        /// The scheduler that ran (class and overrides, e.g.
        /// "DPMSolverMultistepScheduler,use_karras_sigmas=true"); nil in records older than it.
        public var scheduler: String?
        /// nil in records older than it (which ran in fp32).
        public var precision: Precision?

        public init(steps: Int, guidance: Double, height: Int, width: Int, scheduler: String?, precision: Precision?) {
            (self.steps, self.guidance, self.height, self.width, self.scheduler, self.precision) = (steps, guidance, height, width, scheduler, precision)
        }
    }

    public init(model: String, mode: EditMode, settings: Settings, inversion: Inversion? = nil) {
        (self.model, self.mode, self.settings, self.inversion) = (model, mode, settings, inversion)
    }
}

/// Records keep a run as {"model", "mode", "settings"}, and "inversion" for a real picture.
extension EditRun: Codable {}
