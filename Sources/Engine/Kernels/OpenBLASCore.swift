import CBLAS
import Foundation

/// OpenBLAS's choice of kernels for this CPU, and a better one when it chose badly.
///
/// A DYNAMIC_ARCH OpenBLAS picks its kernels from the CPU model when it loads. A release that
/// predates the CPU (0.3.21 on Intel's Emerald Rapids, say) does not know the model and falls
/// back to its SSE3 "Prescott" kernels, about six times slower than the AVX-512 ones the CPU
/// runs. The choice can only be changed before the library loads, through OPENBLAS_CORETYPE,
/// so the `ptp` executable restarts itself with it set (`ptp` only; a library user decides).
public enum OpenBLASCore {
    /// The kernel set OpenBLAS is using, e.g. "Haswell" or "Prescott".
    public static var current: String {
        openblas_get_corename().map { String(cString: $0) } ?? "unknown"
    }

    /// Kernel sets without AVX2 (older SSE-only and AVX-only cores): what a DYNAMIC_ARCH build
    /// falls back to for a CPU model it does not know.
    static let fallbackCores: Set<String> = [
        "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "Coppermine", "Northwood", "Banias",
        "Athlon", "Opteron", "Opteron_SSE3", "Barcelona", "Bobcat", "Nano", "Sandybridge", "unknown",
    ]

    /// The kernel set to use instead of `detected`, given the CPU's feature flags (as in
    /// /proc/cpuinfo), or nil when `detected` already suits the CPU.
    public static func better(than detected: String, flags: Set<String>) -> String? {
        guard fallbackCores.contains(detected), flags.isSuperset(of: ["avx2", "fma"]) else { return nil }
        if flags.isSuperset(of: ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]) { return "SkylakeX" }
        return "Haswell"
    }

    /// The feature flags of the first CPU in /proc/cpuinfo (empty where there is none).
    public static func cpuFlags(cpuinfo: String? = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) -> Set<String> {
        guard let line = cpuinfo?.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    /// Set by `ptp` when it chose the kernels (the choice, or "none" to keep OpenBLAS's own),
    /// and what OpenBLAS had chosen.
    public static let choiceVariable = "PTP_OPENBLAS_CORE_CHOICE", detectedVariable = "PTP_OPENBLAS_CORE_DETECTED"

    /// One line for benchmark reports: the kernels in use and who chose them.
    static var description: String {
        let environment = ProcessInfo.processInfo.environment
        if let choice = environment[choiceVariable], choice != "none" {
            return "core=\(current) (chosen by ptp: this OpenBLAS would use its \(environment[detectedVariable] ?? "older") kernels here)"
        }
        if let forced = environment["OPENBLAS_CORETYPE"] { return "core=\(current) (OPENBLAS_CORETYPE=\(forced))" }
        return "core=\(current) (OpenBLAS's own choice)"
    }
}
