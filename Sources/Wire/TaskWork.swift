import EditContract

/// What a task does; its raw value is its name on the wire and in the journal.
public enum TaskKind: String, Sendable, CaseIterable {
    /// Stage 1 of one or more edits (payload `StageOnePayload`); tensors back: one per edit,
    /// named by its id.
    case stageOne = "stage1"
    /// One image of one edit to its final picture, decode or super-resolution (payload
    /// `FinishPayload`); tensor in: "input" [1, C, h, w]; tensor back: "image" [h, w, 3] bytes.
    case finish
    /// Does nothing (dispatch benchmarks).
    case noop
}

/// A stage-1 task's work.
public struct StageOnePayload: Codable, Sendable {
    /// The edits, run in this order.
    public var edits: [EditSpec]
    public init(edits: [EditSpec]) { self.edits = edits }
}

/// A stage-1 task's result: how each edit ran (its latents travel as tensors).
public struct StageOneResult: Codable, Sendable {
    public struct Edit: Codable, Sendable {
        public var id: String
        public var model: String
        public var mode: String
        public var seconds: Double
        public var steps: Int
        public var guidance: Double
        public var height: Int
        public var width: Int
        /// The scheduler that ran (class and overrides, e.g. "DPMSolverMultistepScheduler,use_karras_sigmas=true").
        public var scheduler: String?
        /// fp32 or bf16.
        public var precision: String?
        public init(id: String, model: String, mode: String, seconds: Double, steps: Int, guidance: Double, height: Int, width: Int,
                    scheduler: String? = nil, precision: String? = nil) {
            (self.id, self.model, self.mode, self.seconds, self.steps, self.guidance, self.height, self.width) = (id, model, mode, seconds, steps, guidance, height, width)
            (self.scheduler, self.precision) = (scheduler, precision)
        }
    }
    public var edits: [Edit]
    /// Edits that could not run (invalid for this model), with the reason.
    public var failures: [String: String]
    public init(edits: [Edit], failures: [String: String] = [:]) {
        self.edits = edits
        self.failures = failures
    }
}

/// A finish task's work (its input travels as a tensor).
public struct FinishPayload: Codable, Sendable {
    public var spec: EditSpec
    /// Which image of the edit (0 the source).
    public var index: Int
    public init(spec: EditSpec, index: Int) { (self.spec, self.index) = (spec, index) }
}

/// A finish task's result (its image travels as a tensor).
public struct FinishResult: Codable, Sendable {
    public var seconds: Double
    public init(seconds: Double) { self.seconds = seconds }
}

/// A task's work, typed: what the coordinator assigns and a worker runs. On the wire it is
/// an `assign` message's kind, JSON payload and tensors.
public enum TaskWork: Sendable {
    case stageOne(StageOnePayload)
    /// One image: its stage-1 output [1, C, h, w], a tensor named "input".
    case finish(FinishPayload, input: TensorPayload)
    case noop

    public var kind: TaskKind {
        switch self {
        case .stageOne: return .stageOne
        case .finish: return .finish
        case .noop: return .noop
        }
    }

    /// The `assign` message that hands this work to a worker.
    public func assignment(taskID: String) throws -> WireMessage {
        switch self {
        case .stageOne(let payload):
            return .assign(taskID: taskID, kind: kind, payload: try payload.jsonText(), tensors: [])
        case .finish(let payload, let input):
            return .assign(taskID: taskID, kind: kind, payload: try payload.jsonText(), tensors: [input])
        case .noop:
            return .assign(taskID: taskID, kind: kind, payload: "{}", tensors: [])
        }
    }

    /// The work an `assign` message carries; a payload that does not decode is malformed.
    public init(kind: TaskKind, payload: String, tensors: [TensorPayload]) throws {
        switch kind {
        case .stageOne:
            self = .stageOne(try StageOnePayload.fromJSON(payload, what: "stage-1 payload"))
        case .finish:
            guard let input = tensors.first(where: { $0.name == "input" }) else { throw WireError(.malformed, "finish task without its input tensor") }
            self = .finish(try FinishPayload.fromJSON(payload, what: "finish payload"), input: input)
        case .noop:
            self = .noop
        }
    }
}
