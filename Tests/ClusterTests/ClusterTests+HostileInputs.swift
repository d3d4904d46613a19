import Foundation
import Testing

/// Hostile values on the command line, in spec files and batch lines, and in images: each is
/// refused with a message, and no process ends by a trap or a signal.
extension ClusterTests {
    @Test("hostile command lines, spec files, batch lines and images end in an error message, never a trap", .timeLimit(.minutes(5)))
    func hostileInputs() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func file(_ name: String, _ text: String) throws -> String {
            let url = folder.appendingPathComponent(name)
            try Data(text.utf8).write(to: url)
            return url.path
        }
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/fuzz")
        let out = folder.appendingPathComponent("out").path
        let edit = ["edit", "--source", "a red circle on a blue background", "--target", "a blue circle on a blue background", "--steps", "2"]
        let generate = ["generate", "--prompt", "a red circle", "--steps", "2"]
        let fifo = folder.appendingPathComponent("fifo.png").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let cases: [[String]] = [
            generate + ["--height", "1099511627776", "--output", out + ".png"],
            generate + ["--width", "-8", "--output", out + ".png"],
            generate + ["--steps", "99999999999", "--output", out + ".png"],
            generate + ["--guidance", "nan", "--output", out + ".png"],
            generate + ["--seed", "18446744073709551615", "--output", out + ".png"],
            generate + ["--threads", "100000000", "--output", out + ".png"],
            generate + ["--output", fifo],
            generate + ["--negative-prompt", String(repeating: "red ", count: 200), "--output", out + ".png"],
            edit + ["--height", "1099511627776", "--output", out],
            edit + ["--self-replace-side", "4000000000", "--output", out],
            edit + ["--seed", "18446744073709551615", "--output", out],
            edit + ["--cross-replace", "red=2", "--output", out],
            edit + ["--reweight", "blue=inf", "--output", out],
            edit + ["--blend", ",,", "--output", out],
            edit + ["--scheduler", "euler,use_karras_sigmas=maybe,,", "--output", out],
            edit + ["--image", fixtures.appendingPathComponent("png/16000x16000.png").path, "--output", out],
            edit + ["--image", fixtures.appendingPathComponent("edit-spec/duplicate-key.json").path, "--output", out],
            edit + ["--output", fifo],
            ["edit", "--spec", try file("deep.json", String(repeating: "[", count: 100_000)), "--output", out],
            ["edit", "--spec", try file("dup.json", #"{"id": "a", "source": "x", "targets": ["y"], "id": "b"}"#), "--output", out],
            ["edit", "--spec", folder.path, "--output", out],
            ["submit", try file("batch.jsonl", #"{"id": "a", "source": "x", "targets": ["y"], "height": 99999999999}"#),
             "--coordinator", "127.0.0.1:1", "--output", out, "--secret-file", try file("secret", "0123456789abcdef0123")],
            ["worker", "--coordinator", "127.0.0.1:1", "--threads", "0", "--secret-file", folder.appendingPathComponent("secret").path],
            ["coordinator", "--port", "99999", "--state", folder.appendingPathComponent("state").path, "--secret-file", folder.appendingPathComponent("secret").path],
        ]
        for arguments in cases {
            let run = ClusterHarness.run([ClusterHarness.ptp.path] + arguments, timeout: 120)
            let shown = arguments.map { $0.count > 60 ? String($0.prefix(57)) + "..." : $0 }.joined(separator: " ")
            #expect(!run.signalled && run.status != 0 && run.output.contains("Error"), "ptp \(shown): status \(run.status), signalled \(run.signalled): \(run.output.suffix(400))")
        }
        // The FIFO is still a FIFO.
        var status = stat()
        #expect(lstat(fifo, &status) == 0 && status.st_mode & S_IFMT == S_IFIFO)
    }
}
