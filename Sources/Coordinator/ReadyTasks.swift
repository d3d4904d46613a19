import DequeModule
import Wire

/// The ready tasks of one model: stage-2 tasks first, then stage-1 tasks, each oldest first.
/// An edit whose stage 1 is done is a moment from delivery and holds its latents on disk until
/// then, so finishing it comes before starting another: results stream out as the batch runs.
struct ReadyTasks {
    private var finishing: Deque<String> = []
    private var starting: Deque<String> = []

    mutating func append(_ task: TaskRecord) {
        if task.kind == .finish { finishing.append(task.id) } else { starting.append(task.id) }
    }

    mutating func popFirst() -> String? { finishing.popFirst() ?? starting.popFirst() }
}
