import CDNNL
import Synchronization

/// One oneDNN primitive (a convolution, a matrix product, a reorder) for one shape, created
/// single-threaded and reusable from any thread.
final class Primitive: @unchecked Sendable {
    private let descriptor: dnnl_primitive_desc_t
    private let primitive: dnnl_primitive_t
    private let scratchpad: MemoryDescriptor
    /// oneDNN's name for the implementation it chose, e.g. "brgconv:avx512_core_bf16".
    let implementation: String

    /// Creates the primitive for an operation descriptor (`dnnl_*_desc_t`), with its scratchpad
    /// handed over by the caller on each run (so concurrent runs never share one).
    init(operation: UnsafeRawPointer, attributes: dnnl_primitive_attr_t? = nil, what: @autoclosure () -> String) {
        OneDNN.runOnThisThreadOnly()
        var attributes = attributes
        var owned: dnnl_primitive_attr_t?
        if attributes == nil {
            OneDNN.check(dnnl_primitive_attr_create(&owned), "creating attributes")
            attributes = owned
        }
        defer { if let owned { dnnl_primitive_attr_destroy(owned) } }
        OneDNN.check(dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user), "setting the scratchpad mode")
        var descriptor: dnnl_primitive_desc_t?
        OneDNN.check(dnnl_primitive_desc_create(&descriptor, operation, attributes, OneDNN.engine, nil), what())
        var primitive: dnnl_primitive_t?
        OneDNN.check(dnnl_primitive_create(&primitive, descriptor), what())
        guard let descriptor, let primitive else { preconditionFailure("oneDNN returned no primitive for \(what())") }
        self.descriptor = descriptor
        self.primitive = primitive
        scratchpad = MemoryDescriptor(Self.query(descriptor, dnnl_query_scratchpad_md))
        var name: UnsafePointer<CChar>?
        dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, &name)
        implementation = name.map { String(cString: $0) } ?? "?"
    }

    /// A reorder from one layout to another (type conversion included).
    convenience init(reorderFrom source: MemoryDescriptor, to destination: MemoryDescriptor) {
        OneDNN.runOnThisThreadOnly()
        var descriptor: dnnl_primitive_desc_t?
        var attributes: dnnl_primitive_attr_t?
        OneDNN.check(dnnl_primitive_attr_create(&attributes), "creating attributes")
        defer { dnnl_primitive_attr_destroy(attributes) }
        OneDNN.check(dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user), "setting the scratchpad mode")
        withUnsafePointer(to: source.descriptor) { s in
            withUnsafePointer(to: destination.descriptor) { d in
                OneDNN.check(dnnl_reorder_primitive_desc_create(&descriptor, s, OneDNN.engine, d, OneDNN.engine, attributes), "creating a reorder")
            }
        }
        guard let descriptor else { preconditionFailure("oneDNN returned no reorder") }
        self.init(descriptor: descriptor)
    }

    private init(descriptor: dnnl_primitive_desc_t) {
        var primitive: dnnl_primitive_t?
        OneDNN.check(dnnl_primitive_create(&primitive, descriptor), "creating a reorder")
        guard let primitive else { preconditionFailure("oneDNN returned no primitive") }
        self.descriptor = descriptor
        self.primitive = primitive
        scratchpad = MemoryDescriptor(Self.query(descriptor, dnnl_query_scratchpad_md))
        implementation = "reorder"
    }

    deinit {
        dnnl_primitive_destroy(primitive)
        dnnl_primitive_desc_destroy(descriptor)
    }

    private static func query(_ descriptor: dnnl_primitive_desc_t, _ what: dnnl_query_t) -> dnnl_memory_desc_t {
        guard let pointer = dnnl_primitive_desc_query_md(descriptor, what, 0) else { return dnnl_memory_desc_t() }
        return pointer.pointee
    }

    /// The weights layout this primitive chose (for `format_tag_any` weights).
    var weightsDescriptor: MemoryDescriptor { MemoryDescriptor(Self.query(descriptor, dnnl_query_weights_md)) }

    /// One argument of a run: which (`DNNL_ARG_*`), its layout, and where it is.
    struct Argument {
        let kind: Int32
        let descriptor: MemoryDescriptor
        let pointer: UnsafeRawPointer
    }

    /// Runs the primitive on this thread, single-threaded.
    func execute(_ arguments: [Argument]) {
        OneDNN.runOnThisThreadOnly()
        let scratchBytes = scratchpad.byteCount
        let scratch = scratchBytes > 0 ? AlignedBuffer(byteCount: scratchBytes) : nil
        var memories: [dnnl_exec_arg_t] = []
        memories.reserveCapacity(arguments.count + 1)
        defer { for argument in memories { dnnl_memory_destroy(argument.memory) } }
        func add(_ kind: Int32, _ descriptor: MemoryDescriptor, _ pointer: UnsafeRawPointer) {
            var memory: dnnl_memory_t?
            withUnsafePointer(to: descriptor.descriptor) {
                OneDNN.check(dnnl_memory_create(&memory, $0, OneDNN.engine, UnsafeMutableRawPointer(mutating: pointer)), "wrapping memory")
            }
            memories.append(dnnl_exec_arg_t(arg: kind, memory: memory))
        }
        for argument in arguments { add(argument.kind, argument.descriptor, argument.pointer) }
        if let scratch { add(DNNL_ARG_SCRATCHPAD, scratchpad, scratch.pointer) }
        OneDNN.check(dnnl_primitive_execute(primitive, OneDNN.stream, Int32(memories.count), memories), "running \(implementation)")
    }
}

/// What oneDNN made for one shape, kept for the life of the process: a UNet has a few dozen
/// distinct shapes, and creating a primitive JIT-compiles its kernels (milliseconds).
final class ShapeCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let values = Mutex<[Key: Value]>([:])

    /// The value for `key`, made by `make` the first time (under the lock, so two threads
    /// asking at once make it once).
    func value(_ key: Key, make: () -> Value) -> Value {
        values.withLock { cache in
            if let existing = cache[key] { return existing }
            let created = make()
            cache[key] = created
            return created
        }
    }
}
