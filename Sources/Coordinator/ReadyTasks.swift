import DequeModule
import Wire

/// The ready work of one capability: stage-2 tasks first, then stage-1 and retried variant
/// tasks, each oldest first, then the sampled lines whose variants have not all gone out (each
/// line's variants made into tasks only as workers ask, in line order). An edit whose stage 1
/// is done is a moment from delivery and holds its latents on disk until then, so finishing it
/// comes before starting another: results stream out as the batch runs; a line's variants go
/// out together, so lines end, and their pictures land, in order.
struct ReadyTasks {
    private var finishing: Deque<String> = []
    private var starting: Deque<String> = []
    private var lines: Deque<LineReference> = []

    mutating func append(_ task: TaskRecord) {
        if task.kind == .finish { finishing.append(task.id) } else { starting.append(task.id) }
    }

    mutating func append(_ line: LineReference) { lines.append(line) }

    mutating func popFirst() -> String? { finishing.popFirst() ?? starting.popFirst() }

    /// The first of the next `window` stage-1 tasks that `wanted` picks, taken out of the queue;
    /// nil (nothing taken) if none is, or finishing work is waiting (it goes first).
    mutating func popFirst(within window: Int, where wanted: (String) -> Bool) -> String? {
        guard finishing.isEmpty, let index = starting.prefix(window).firstIndex(where: wanted) else { return nil }
        return starting.remove(at: index)
    }

    /// Whether finishing work (which goes before anything else) is waiting.
    var hasFinishing: Bool { !finishing.isEmpty }

    /// The first line with variants to hand out (it stays until it has none).
    var firstLine: LineReference? { lines.first }

    mutating func dropFirstLine() { _ = lines.popFirst() }

    /// Lines waiting, for reports.
    var waitingLines: Deque<LineReference> { lines }
}

/// A sampled line by its job and id.
struct LineReference: Hashable {
    let job: String
    let line: String
}
