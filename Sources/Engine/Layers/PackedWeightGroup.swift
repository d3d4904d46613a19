import Synchronization

/// The packed weights of one model component (a UNet, the text encoders): every
/// `PackedWeights` made while the component loads joins its group, so that a run that will not
/// use the component again can return their memory (`release`). A released layer packs its
/// weights again if it runs again, to the same bits.
final class PackedWeightGroup: Sendable {
    /// The group that weights made on this task join (set while a component loads).
    @TaskLocal static var loading: PackedWeightGroup?

    private let members = Mutex<[PackedWeights]>([])

    /// Runs `load`, collecting into this group every packed weight it makes.
    func collecting<T>(_ load: () throws -> T) rethrows -> T {
        try Self.$loading.withValue(self, operation: load)
    }

    func add(_ weights: PackedWeights) { members.withLock { $0.append(weights) } }

    /// Bytes held in reordered copies (made for a precision and layout).
    var packedBytes: Int { members.withLock { $0.reduce(0) { $0 + $1.packedBytes } } }

    /// Drops every packed form of the group's weights. Not while any of its layers runs: a
    /// product reads its packed weights without holding them.
    func release() {
        for weights in members.withLock({ $0 }) { weights.release() }
    }
}
