import Foundation

/// A progress bar on standard error: redrawn in place on a terminal, a line per 10% otherwise
/// (so logs of long runs stay readable).
final class ProgressBar {
    private let label: String
    private let interactive = isatty(STDERR_FILENO) != 0
    private let start = Date()
    private var lastDecile = -1

    init(_ label: String) { self.label = label }

    func update(_ done: Int, of total: Int) { update(done, of: total, detail: "") }

    /// With `detail` after the rate.
    func update(_ done: Int, of total: Int, detail: String) {
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let elapsed = Date().timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let width = 30
        let filled = Int(fraction * Double(width))
        let line = String(format: "%@ [%@%@] %d/%d  %.2f it/s", label, String(repeating: "#", count: filled),
                          String(repeating: ".", count: width - filled), done, total, rate) + detail
        if interactive {
            FileHandle.standardError.write(Data(("\r" + line + (done == total ? "\n" : "")).utf8))
        } else {
            let decile = Int(fraction * 10)
            if decile != lastDecile || done == total {
                lastDecile = decile
                FileHandle.standardError.write(Data((line + "\n").utf8))
            }
        }
    }
}

/// Prints a line to standard error.
func note(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
