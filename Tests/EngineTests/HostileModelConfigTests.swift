import EditContract
@testable import Engine
import Foundation
import Testing

/// Model directories whose configs count zero heads, groups, channels or steps: each is refused
/// by file and key when loading, never trapping in a division or an allocation.
@Suite("hostile model configs are refused by key")
struct HostileModelConfigTests {
    /// A copy of `fixture` (linked, not copied, except for the one file changed) with `key` of
    /// `file` set to `value`.
    func variant(of fixture: URL, file: String, key: String, value: JSONValue) throws -> URL {
        let root = try temporaryDirectory("hostile-\(key)")
        let manager = FileManager.default
        let changedFolder = file.split(separator: "/").count > 1 ? String(file.split(separator: "/")[0]) : nil
        for entry in try manager.contentsOfDirectory(atPath: fixture.path) where entry != file {
            if entry == changedFolder {
                try manager.createDirectory(at: root.appendingPathComponent(entry), withIntermediateDirectories: true)
                for inner in try manager.contentsOfDirectory(atPath: fixture.appendingPathComponent(entry).path) where "\(entry)/\(inner)" != file {
                    try manager.createSymbolicLink(at: root.appendingPathComponent(entry).appendingPathComponent(inner),
                                                   withDestinationURL: fixture.appendingPathComponent(entry).appendingPathComponent(inner))
                }
            } else {
                try manager.createSymbolicLink(at: root.appendingPathComponent(entry), withDestinationURL: fixture.appendingPathComponent(entry))
            }
        }
        var object = try #require(try JSONValue.parse(Data(contentsOf: fixture.appendingPathComponent(file)), allowingNonFiniteNumbers: true).objectValue)
        object[key] = value
        try JSONEncoder().encode(JSONValue.object(object)).write(to: root.appendingPathComponent(file))
        return root
    }

    static let embedded = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("models/shapes-world")

    @Test("zero or negative sizes, empty channel lists and groups that do not divide the channels", arguments: [
        ("tiny-sd", "unet/config.json", "attention_head_dim", JSONValue.int(0)),
        ("tiny-sd", "unet/config.json", "norm_num_groups", .int(0)),
        ("tiny-sd", "unet/config.json", "norm_num_groups", .int(7)),
        ("tiny-sd", "unet/config.json", "block_out_channels", .array([])),
        ("tiny-sd", "unet/config.json", "layers_per_block", .int(-1)),
        ("tiny-sd", "unet/config.json", "cross_attention_dim", .int(0)),
        ("tiny-sd", "vae/config.json", "norm_num_groups", .int(0)),
        ("tiny-sd", "vae/config.json", "latent_channels", .int(0)),
        ("tiny-sd", "text_encoder/config.json", "num_attention_heads", .int(0)),
        ("tiny-sd", "text_encoder/config.json", "hidden_size", .int(0)),
        ("tiny-sd", "scheduler/scheduler_config.json", "num_train_timesteps", .int(0)),
        ("shapes-world", "model_index.json", "_ptp_super_resolution_factor", .int(0)),
    ])
    func refused(_ fixture: String, file: String, key: String, value: JSONValue) throws {
        let source = fixture == "shapes-world" ? Self.embedded : Fixtures.url(fixture)
        let root = try variant(of: source, file: file, key: key, value: value)
        defer { try? FileManager.default.removeItem(at: root) }
        do {
            _ = try DiffusionModel(directory: root)
            Issue.record("\(file) with \(key) = \(value) was accepted")
        } catch let error as ModelDirectoryError {
            #expect(error.path.hasSuffix(file) && error.description.contains(key), "\(error)")
        }
    }
}
