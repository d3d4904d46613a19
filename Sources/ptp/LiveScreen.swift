import Foundation

/// A terminal region redrawn in place: the cursor goes home and each line clears its tail,
/// so a refresh does not flicker the way clearing the whole screen does. The frame is cut to
/// the window (a taller or wider one would scroll, and the next redraw would land askew). Off
/// a terminal, each frame is printed after the last.
struct LiveScreen {
    let interactive: Bool

    func draw(_ frame: String) {
        guard interactive else {
            print(frame + "\n")
            return
        }
        var lines = frame.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if let (rows, columns) = Self.windowSize() {
            if lines.count > rows - 1 { lines = Array(lines.prefix(max(1, rows - 2))) + ["... (\(lines.count - rows + 2) more lines; enlarge the window)"] }
            lines = lines.map { $0.count > columns ? String($0.prefix(columns)) : $0 }
        }
        print("\u{1B}[H" + lines.joined(separator: "\u{1B}[K\n") + "\u{1B}[K\n\u{1B}[J", terminator: "")
    }

    /// The terminal's rows and columns, if stdout is one that says.
    static func windowSize() -> (rows: Int, columns: Int)? {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0, size.ws_col > 0 else { return nil }
        return (Int(size.ws_row), Int(size.ws_col))
    }

    static func clock() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        return formatter.string(from: Date())
    }

    static func seconds(_ interval: Double) -> String {
        interval == interval.rounded() ? "\(Int(interval)) s" : String(format: "%.1f s", interval)
    }
}
