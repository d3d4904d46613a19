import Engine
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Restarts `ptp` with OPENBLAS_CORETYPE set when OpenBLAS fell back to kernels far below what
/// the CPU runs (see `OpenBLASCore`). A user's own OPENBLAS_CORETYPE is never overridden, and
/// setting it (to the detected core, say) keeps OpenBLAS's choice.
enum KernelChoice {
    static func restartIfMisdetected() {
        let environment = ProcessInfo.processInfo.environment
        guard environment["OPENBLAS_CORETYPE"] == nil, environment[OpenBLASCore.choiceVariable] == nil else { return }
        let detected = OpenBLASCore.current
        guard let better = OpenBLASCore.better(than: detected, flags: OpenBLASCore.cpuFlags()) else { return }
        setenv("OPENBLAS_CORETYPE", better, 1)
        setenv(OpenBLASCore.choiceVariable, better, 1)
        setenv(OpenBLASCore.detectedVariable, detected, 1)
        // The same arguments; /proc/self/exe is this executable whatever argv[0] says, and the
        // process keeps its pid, so supervisors and signals are unaffected.
        var argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &argv)
        // Only reached when exec failed: go on with OpenBLAS's own kernels.
        for pointer in argv { free(pointer) }
        unsetenv("OPENBLAS_CORETYPE")
        setenv(OpenBLASCore.choiceVariable, "none", 1)
    }
}
