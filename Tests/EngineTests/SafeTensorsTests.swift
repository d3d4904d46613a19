@testable import Engine
import Foundation
import Testing

@Suite("safetensors reading, writing and refusal of corrupt files")
struct SafeTensorsTests {
    /// A file from a raw header string and data bytes.
    func file(header: String, data: [UInt8], headerLength: UInt64? = nil, in directory: URL, name: String = "t.safetensors") throws -> URL {
        var bytes = Data()
        withUnsafeBytes(of: (headerLength ?? UInt64(header.utf8.count)).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array(header.utf8))
        bytes.append(contentsOf: data)
        let url = directory.appendingPathComponent(name)
        try bytes.write(to: url)
        return url
    }

    func error(opening url: URL) -> SafeTensorsError? {
        do { _ = try SafeTensorsFile(url: url); return nil } catch { return error as? SafeTensorsError }
    }

    @Test("round trip in F32 (mapped without a copy) and F16 (converted once)")
    func roundTrip() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let tensors = ["a.weight": randomTensor([3, 5], seed: 1), "b": randomTensor([7], seed: 2), "empty": Tensor.zeros([0, 4])]
        let url32 = directory.appendingPathComponent("f32.safetensors")
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"], to: url32)
        let file32 = try SafeTensorsFile(url: url32)
        #expect(file32.metadata["format"] == "pt")
        #expect(file32.tensorNames == ["a.weight", "b", "empty"])
        #expect(try file32.tensor("a.weight").scalars == tensors["a.weight"]!.scalars)
        #expect(try file32.tensor("empty").shape == [0, 4])

        // F32 tensors are the mapped file's bytes, not a copy; one written to is copied, and
        // the file is unchanged.
        var mapped = try file32.tensor("b")
        #expect(mapped.isBorrowed)
        mapped[0] = 42
        #expect(!mapped.isBorrowed)
        #expect(try file32.tensor("b").scalars == tensors["b"]!.scalars)

        let url16 = directory.appendingPathComponent("f16.safetensors")
        try SafeTensorsWriter.write(tensors, storage: .float16, to: url16)
        let file16 = try SafeTensorsFile(url: url16)
        #expect(file16.entries["a.weight"]?.dtype == .float16)
        expectClose(try file16.tensor("a.weight"), tensors["a.weight"]!, tolerance: 5e-4)
        #expect(try !file16.tensor("a.weight").isBorrowed)
        #expect(throws: SafeTensorsError.self) { try file16.tensor("a.weight", shape: [5, 3]) }
    }

    @Test("BF16 is read as the top half of a Float32")
    func bfloat16() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let values: [Float] = [1.5, -2.25, 3.0e10]
        let data = values.flatMap { value -> [UInt8] in
            let bits = UInt16(value.bitPattern >> 16)
            return [UInt8(bits & 0xFF), UInt8(bits >> 8)]
        }
        let url = try file(header: #"{"x":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}}"#, data: data, in: directory)
        let x = try SafeTensorsFile(url: url).tensor("x").scalars
        #expect(x[0] == 1.5 && x[1] == -2.25 && abs(x[2] - 3.0e10) / 3.0e10 < 1e-2)
    }

    @Test("each kind of corruption gives its own error naming the file and tensor")
    func corruptFiles() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let eight = [UInt8](repeating: 0, count: 8)

        // Truncated below the 8-byte length field.
        let short = directory.appendingPathComponent("short.safetensors")
        try Data([1, 2, 3]).write(to: short)
        #expect(error(opening: short)?.kind == .truncated(size: 3))

        // Header length past the end of the file.
        let past = try file(header: "{}", data: [], headerLength: 1000, in: directory, name: "past.safetensors")
        #expect(error(opening: past)?.kind == .headerPastEnd(headerLength: 1000, fileSize: 10))

        // Not JSON.
        let garbage = try file(header: "{not json", data: [], in: directory, name: "garbage.safetensors")
        if case .invalidHeader = error(opening: garbage)?.kind {} else { Issue.record("garbage header accepted") }

        // Unknown dtype.
        let dtype = try file(header: #"{"w":{"dtype":"F13","shape":[2],"data_offsets":[0,8]}}"#, data: eight, in: directory, name: "dtype.safetensors")
        let dtypeError = error(opening: dtype)
        #expect(dtypeError?.kind == .unknownDType("F13") && dtypeError?.tensor == "w")
        #expect(dtypeError?.description.contains("dtype.safetensors") == true)

        // Offsets out of bounds (a truncated data section).
        let bounds = try file(header: #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: eight, in: directory, name: "bounds.safetensors")
        #expect(error(opening: bounds)?.kind == .offsetsOutOfBounds(begin: 0, end: 16, dataSize: 8))

        // Overlapping tensors.
        let overlap = try file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                               data: eight, in: directory, name: "overlap.safetensors")
        #expect(error(opening: overlap)?.kind == .overlap(with: "a"))

        // Shape x dtype disagreeing with the byte span.
        let size = try file(header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: eight, in: directory, name: "size.safetensors")
        #expect(error(opening: size)?.kind == .sizeMismatch(expectedBytes: 12, storedBytes: 8))

        // Offsets in the wrong order, negative shapes, missing fields.
        let reversed = try file(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#, data: eight, in: directory, name: "rev.safetensors")
        #expect(error(opening: reversed)?.kind == .offsetsOutOfBounds(begin: 8, end: 4, dataSize: 8))
        let negative = try file(header: #"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: eight, in: directory, name: "neg.safetensors")
        if case .malformedEntry = error(opening: negative)?.kind {} else { Issue.record("negative shape accepted") }

        // A tensor that is not there, and one that is not a float.
        let ints = try file(header: #"{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, data: eight, in: directory, name: "ints.safetensors")
        let opened = try SafeTensorsFile(url: ints)
        #expect(throws: SafeTensorsError(file: ints.path, tensor: "nope", kind: .missingTensor)) { try opened.tensor("nope") }
        #expect(throws: SafeTensorsError(file: ints.path, tensor: "ids", kind: .unsupportedDType("I64"))) { try opened.tensor("ids") }

        // A file cut in the middle of the data, as a partial download would be.
        let whole = directory.appendingPathComponent("whole.safetensors")
        try SafeTensorsWriter.write(["w": randomTensor([64], seed: 3)], to: whole)
        let bytes = try Data(contentsOf: whole)
        let cut = directory.appendingPathComponent("cut.safetensors")
        try bytes.prefix(bytes.count - 10).write(to: cut)
        if case .offsetsOutOfBounds = error(opening: cut)?.kind {} else { Issue.record("cut file accepted") }

        // Every message names the file, and the tensor when one is at fault.
        let cases: [(URL, String?)] = [(short, nil), (past, nil), (garbage, nil), (dtype, "w"), (bounds, "w"), (overlap, "b"), (size, "w"),
                                       (reversed, "w"), (negative, "w"), (cut, "w")]
        for (url, tensor) in cases {
            let message = error(opening: url)?.description ?? ""
            #expect(message.contains(url.lastPathComponent), "\(url.lastPathComponent): \(message)")
            if let tensor { #expect(message.contains("tensor '\(tensor)'"), "\(message)") }
        }
    }
}
