import CDNNL
import Foundation

/// oneDNN as the Engine runs it: one CPU engine, primitives created once per shape and kept
/// (`PrimitiveCache`), each executed single-threaded on one of the Engine's own threads.
///
/// Debian's oneDNN is built on OpenMP. Letting it run its own OpenMP team beside the Engine's
/// threads would put two pools on the same cores (OpenMP's workers spin between calls, taking
/// the cores from the normalisation and attention loops that follow). Instead every oneDNN call
/// is one slab of work that the Engine cut by the operation's shape alone and runs on its own
/// threads (`parallelFor`): one pool shares the cores, and since the cut never depends on the
/// thread count, results are bit-identical on one thread or many.
enum OneDNN {
    /// The CPU engine every primitive and memory object belongs to.
    nonisolated(unsafe) static let engine: dnnl_engine_t = {
        var engine: dnnl_engine_t?
        check(dnnl_engine_create(&engine, dnnl_cpu, 0), "creating the CPU engine")
        guard let engine else { preconditionFailure("oneDNN returned no CPU engine") }
        return engine
    }()

    /// Stops on a failed call: every call here is made with arguments the Engine built itself,
    /// so a failure is a bug (or a broken installation), never bad user input.
    static func check(_ status: dnnl_status_t, _ call: @autoclosure () -> String) {
        guard status == dnnl_success else {
            preconditionFailure("oneDNN failed \(call()): status \(status.rawValue)")
        }
    }

    /// This thread's stream, created on first use (streams are not shared between threads).
    static var stream: dnnl_stream_t {
        if let existing = pthread_getspecific(streamKey) { return OpaquePointer(existing) }
        var stream: dnnl_stream_t?
        check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "creating a stream")
        guard let stream else { preconditionFailure("oneDNN returned no stream") }
        pthread_setspecific(streamKey, UnsafeRawPointer(stream))
        return stream
    }

    private static let streamKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { stream in dnnl_stream_destroy(OpaquePointer(stream)) }
        return key
    }()

    /// Makes this thread's oneDNN calls single-threaded (libgomp keeps the team size per
    /// thread, so each Engine thread sets its own once). Primitives created under it also
    /// choose their blocking for one thread.
    @inline(__always)
    static func runOnThisThreadOnly() {
        if omp_get_max_threads() != 1 { omp_set_num_threads(1) }
    }

    /// The instruction set oneDNN's kernels use on this CPU.
    static var instructionSet: dnnl_cpu_isa_t { dnnl_get_effective_cpu_isa() }

    /// Whether the CPU multiplies bfloat16 natively (AVX512-BF16, or AMX), which is what makes
    /// bf16 worth running: without it oneDNN would emulate bf16, slower than float32.
    static var hasNativeBFloat16: Bool {
        let bf16 = dnnl_cpu_isa_avx512_core_bf16.rawValue
        return instructionSet.rawValue & bf16 == bf16
    }

    /// oneDNN's version and the kernels it picks here, e.g. "oneDNN 2.6.3 (avx512_core_bf16)".
    static var configuration: String {
        guard let version = dnnl_version() else { return "oneDNN" }
        let v = version.pointee
        return "oneDNN \(v.major).\(v.minor).\(v.patch) (\(instructionSetName))"
    }

    static var instructionSetName: String {
        switch instructionSet {
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
        case dnnl_cpu_isa_avx2: return "avx2"
        default: return "isa \(String(instructionSet.rawValue, radix: 16))"
        }
    }
}

/// A memory descriptor: dimensions, element type and layout (strides or oneDNN's own blocked
/// format), without the memory itself.
struct MemoryDescriptor: @unchecked Sendable {
    var descriptor: dnnl_memory_desc_t

    init(_ descriptor: dnnl_memory_desc_t) { self.descriptor = descriptor }

    /// Plain strided layout.
    init(dimensions: [Int], type: dnnl_data_type_t, strides: [Int]) {
        descriptor = dnnl_memory_desc_t()
        let dims = dimensions.map(Int64.init), steps = strides.map(Int64.init)
        OneDNN.check(dnnl_memory_desc_init_by_strides(&descriptor, Int32(dims.count), dims, type, steps),
                     "describing \(dimensions) with strides \(strides)")
    }

    /// A layout named by a format tag (`dnnl_format_tag_any` lets the primitive choose).
    init(dimensions: [Int], type: dnnl_data_type_t, tag: dnnl_format_tag_t) {
        descriptor = dnnl_memory_desc_t()
        let dims = dimensions.map(Int64.init)
        OneDNN.check(dnnl_memory_desc_init_by_tag(&descriptor, Int32(dims.count), dims, type, tag),
                     "describing \(dimensions) with tag \(tag.rawValue)")
    }

    /// Bytes a buffer of this layout needs.
    var byteCount: Int {
        withUnsafePointer(to: descriptor) { Int(dnnl_memory_desc_get_size($0)) }
    }

    static func == (lhs: MemoryDescriptor, rhs: MemoryDescriptor) -> Bool {
        withUnsafePointer(to: lhs.descriptor) { a in withUnsafePointer(to: rhs.descriptor) { b in dnnl_memory_desc_equal(a, b) != 0 } }
    }
}

/// Memory the Engine owns outside tensors (bfloat16 activations, packed weights), aligned for
/// AVX-512 and freed with the object.
///
/// Weights that live as long as their model are mapped pages of their own (`mapped`), not heap
/// blocks: packing a layer makes a temporary float32 copy first, and long-lived blocks placed
/// between those temporaries would keep the heap from reusing their space (a bf16 Stable
/// Diffusion then held 5.4 GB instead of 2).
final class AlignedBuffer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let byteCount: Int
    private let mapped: Bool

    init(byteCount: Int, mapped: Bool = false) {
        self.byteCount = byteCount
        if mapped, let pages = mmap(nil, max(byteCount, 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), pages != MAP_FAILED {
            pointer = pages
            self.mapped = true
        } else {
            pointer = LargeBlockCache.allocateBuffer(byteCount: byteCount)
            self.mapped = false
        }
    }

    deinit {
        if mapped { munmap(pointer, max(byteCount, 1)) } else { LargeBlockCache.deallocateBuffer(pointer, byteCount: byteCount) }
    }
}
