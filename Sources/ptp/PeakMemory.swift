import Foundation

/// This process's peak resident memory (the high-water mark the kernel keeps).
enum PeakMemory {
    static func selfMiB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    /// "612 MB" or "5.7 GB".
    static var summary: String {
        let mib = selfMiB()
        return mib < 1024 ? String(format: "%.0f MB", mib * 1.048576) : String(format: "%.1f GB", mib * 1.048576 / 1000)
    }
}
