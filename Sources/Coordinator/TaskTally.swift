/// Counts of a job's tasks by outcome, so that a dispatch measurement can prove every task
/// really travelled to a worker and back (a task that fails at once also leaves the queue).
public struct TaskTally: Sendable, Equatable {
    public var unfinished = 0
    public var done = 0
    public var failed = 0
    /// The reason the first failed task gave, if any failed.
    public var firstError: String?

    public init() {}
}
