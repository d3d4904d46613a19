import EditContract
import Imaging
import Foundation

/// Element types a safetensors file may declare.
enum SafeTensorsDType: String, Sendable, CaseIterable {
    case float64 = "F64", float32 = "F32", float16 = "F16", bfloat16 = "BF16"
    case int64 = "I64", int32 = "I32", int16 = "I16", int8 = "I8"
    case uint64 = "U64", uint32 = "U32", uint16 = "U16", uint8 = "U8", bool = "BOOL"
    case float8E4M3 = "F8_E4M3", float8E5M2 = "F8_E5M2"

    var byteSize: Int {
        switch self {
        case .float64, .int64, .uint64: return 8
        case .float32, .int32, .uint32: return 4
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .int8, .uint8, .bool, .float8E4M3, .float8E5M2: return 1
        }
    }
}

/// Why a safetensors file was refused, naming the file and, where there is one, the tensor.
struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    enum Kind: Equatable, Sendable {
        case truncated(size: Int)
        case headerPastEnd(headerLength: UInt64, fileSize: Int)
        case headerTooLarge(headerLength: UInt64)
        case invalidHeader(String)
        case unknownDType(String)
        case malformedEntry(String)
        case offsetsOutOfBounds(begin: Int, end: Int, dataSize: Int)
        case sizeMismatch(expectedBytes: Int, storedBytes: Int)
        case overlap(with: String)
        case missingTensor
        case unsupportedDType(String)
        case shapeMismatch(expected: [Int], found: [Int])
    }

    let file: String
    let tensor: String?
    let kind: Kind

    init(file: String, tensor: String?, kind: Kind) {
        self.file = file
        self.tensor = tensor
        self.kind = kind
    }

    var description: String {
        let subject = tensor.map { "tensor '\($0)' in \(file)" } ?? file
        switch kind {
        case .truncated(let size):
            return "\(file) is truncated: \(size) bytes, too short for a safetensors header (re-download or re-export the file)"
        case .headerPastEnd(let length, let size):
            return "\(file): header length \(length) runs past the end of the \(size)-byte file (the file is truncated or not safetensors)"
        case .headerTooLarge(let length):
            return "\(file): header length \(length) exceeds the 100 MB limit (the file is corrupt or not safetensors)"
        case .invalidHeader(let reason):
            return "\(file): the header is not valid safetensors JSON: \(reason)"
        case .unknownDType(let dtype):
            return "\(subject): unknown dtype '\(dtype)' (expected one of \(SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .malformedEntry(let reason):
            return "\(subject): malformed header entry: \(reason)"
        case .offsetsOutOfBounds(let begin, let end, let size):
            return "\(subject): data offsets [\(begin), \(end)] lie outside the \(size)-byte data section (the file is truncated or corrupt)"
        case .sizeMismatch(let expected, let stored):
            return "\(subject): shape and dtype need \(expected) bytes but the offsets span \(stored)"
        case .overlap(let other):
            return "\(subject): its bytes overlap those of tensor '\(other)' (the file is corrupt)"
        case .missingTensor:
            return "\(subject) is missing (is this the right model or component?)"
        case .unsupportedDType(let dtype):
            return "\(subject): dtype \(dtype) cannot be used as weights (F32, F16 and BF16 can)"
        case .shapeMismatch(let expected, let found):
            return "\(subject) has shape \(found), the configuration implies \(expected) (config.json and weights disagree)"
        }
    }
}

/// A safetensors file, validated on open and memory-mapped. F32 tensors are views of the
/// mapping (no copy); F16 and BF16 are converted to F32 when read.
public final class SafeTensorsFile: @unchecked Sendable {
    public struct Entry: Sendable, Equatable {
        let dtype: SafeTensorsDType
        let shape: [Int]
        /// Byte range within the data section.
        let byteRange: Range<Int>
    }

    /// The largest header accepted, as in the reference implementation.
    static let maximumHeaderLength: UInt64 = 100_000_000

    let url: URL
    public let entries: [String: Entry]
    let metadata: [String: String]
    private let mapping: MemoryMappedFile
    private let dataStart: Int

    public var tensorNames: [String] { entries.keys.sorted() }

    public init(url: URL) throws {
        self.url = url
        mapping = try MemoryMappedFile(url: url)
        let file = url.path
        let bytes = mapping.bytes
        guard bytes.count >= 8 else { throw SafeTensorsError(file: file, tensor: nil, kind: .truncated(size: bytes.count)) }
        let headerLength = bytes.loadUnaligned(as: UInt64.self).littleEndian
        guard headerLength <= Self.maximumHeaderLength else {
            throw SafeTensorsError(file: file, tensor: nil, kind: .headerTooLarge(headerLength: headerLength))
        }
        guard 8 + headerLength <= UInt64(bytes.count) else {
            throw SafeTensorsError(file: file, tensor: nil, kind: .headerPastEnd(headerLength: headerLength, fileSize: bytes.count))
        }
        dataStart = 8 + Int(headerLength)
        let dataSize = bytes.count - dataStart
        let header: JSONValue
        do {
            header = try JSONValue.parse(Data(bytes[8..<dataStart]))
        } catch {
            throw SafeTensorsError(file: file, tensor: nil, kind: .invalidHeader("\(error)"))
        }
        guard let object = header.objectValue else {
            throw SafeTensorsError(file: file, tensor: nil, kind: .invalidHeader("the top level is not an object"))
        }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                for (key, item) in value.objectValue ?? [:] { metadata[key] = item.stringValue ?? "\(item)" }
                continue
            }
            entries[name] = try Self.parseEntry(value, name: name, file: file, dataSize: dataSize)
        }
        // No two tensors may share bytes.
        let ordered = entries.filter { !$0.value.byteRange.isEmpty }.sorted { $0.value.byteRange.lowerBound < $1.value.byteRange.lowerBound }
        for (previous, next) in zip(ordered, ordered.dropFirst()) where next.value.byteRange.lowerBound < previous.value.byteRange.upperBound {
            throw SafeTensorsError(file: file, tensor: next.key, kind: .overlap(with: previous.key))
        }
        self.entries = entries
        self.metadata = metadata
    }

    private static func parseEntry(_ value: JSONValue, name: String, file: String, dataSize: Int) throws -> Entry {
        func fail(_ kind: SafeTensorsError.Kind) -> SafeTensorsError { SafeTensorsError(file: file, tensor: name, kind: kind) }
        guard let fields = value.objectValue else { throw fail(.malformedEntry("not an object")) }
        guard let dtypeName = fields["dtype"]?.stringValue else { throw fail(.malformedEntry("no 'dtype' string")) }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else { throw fail(.unknownDType(dtypeName)) }
        guard let shapeValues = fields["shape"]?.arrayValue else { throw fail(.malformedEntry("no 'shape' array")) }
        let shape = shapeValues.compactMap(\.intValue)
        guard shape.count == shapeValues.count, shape.allSatisfy({ $0 >= 0 }) else {
            throw fail(.malformedEntry("'shape' must hold non-negative integers"))
        }
        guard let offsets = fields["data_offsets"]?.arrayValue?.compactMap(\.intValue), offsets.count == 2 else {
            throw fail(.malformedEntry("'data_offsets' must be two integers"))
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin >= 0, begin <= end, end <= dataSize else {
            throw fail(.offsetsOutOfBounds(begin: begin, end: end, dataSize: dataSize))
        }
        let (elements, overflow) = shape.reduce((1, false)) { acc, d in
            let (p, o) = acc.0.multipliedReportingOverflow(by: d)
            return (p, acc.1 || o)
        }
        let (expected, overflow2) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, !overflow2, expected == end - begin else {
            throw fail(.sizeMismatch(expectedBytes: overflow || overflow2 ? Int.max : expected, storedBytes: end - begin))
        }
        return Entry(dtype: dtype, shape: shape, byteRange: begin..<end)
    }

    /// The named tensor as Float32: a view of the mapping for F32 data, a converted copy for
    /// F16 and BF16.
    public func tensor(_ name: String) throws -> Tensor {
        floats(of: try floatEntry(name))
    }

    /// The entry `name`, checked to hold F32, F16 or BF16 values (and `shape`, when given), to
    /// be read with `floats(of:)` now or later.
    func floatEntry(_ name: String, shape: [Int]? = nil) throws -> Entry {
        guard let entry = entries[name] else {
            throw SafeTensorsError(file: url.path, tensor: name, kind: .missingTensor)
        }
        guard [.float32, .float16, .bfloat16].contains(entry.dtype) else {
            throw SafeTensorsError(file: url.path, tensor: name, kind: .unsupportedDType(entry.dtype.rawValue))
        }
        if let shape, entry.shape != shape {
            throw SafeTensorsError(file: url.path, tensor: name, kind: .shapeMismatch(expected: shape, found: entry.shape))
        }
        return entry
    }

    /// The values of an entry `floatEntry` accepted, as Float32 (a view of the mapping for F32).
    func floats(of entry: Entry) -> Tensor {
        let count = entry.shape.reduce(1, *)
        let source = mapping.bytes.baseAddress.map { $0 + dataStart + entry.byteRange.lowerBound }
        switch entry.dtype {
        case .float32:
            guard let source else { return Tensor(uninitializedShape: entry.shape) }
            if Int(bitPattern: source) % MemoryLayout<Float>.alignment == 0 {
                return Tensor(shape: entry.shape,
                              storage: TensorStorage(borrowing: source.assumingMemoryBound(to: Float.self), count: count, owner: mapping))
            }
            var result = Tensor(uninitializedShape: entry.shape)
            result.withUnsafeMutableBufferPointer { UnsafeMutableRawBufferPointer($0).copyMemory(from: UnsafeRawBufferPointer(start: source, count: count * 4)) }
            return result
        case .float16, .bfloat16:
            var result = Tensor(uninitializedShape: entry.shape)
            if let source {
                result.withUnsafeMutableBufferPointer { out in
                    if entry.dtype == .float16 {
                        HalfPrecision.decodeFloat16(source, into: out.baseAddress!, count: count)
                    } else {
                        HalfPrecision.decodeBFloat16(source, into: out.baseAddress!, count: count)
                    }
                }
                mapping.release((dataStart + entry.byteRange.lowerBound)..<(dataStart + entry.byteRange.upperBound))
            }
            return result
        default:
            preconditionFailure("\(entry.dtype) is not a float type; floatEntry refuses it")
        }
    }

    /// The named tensor, checked against the shape the model's configuration implies.
    func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        let result = try tensor(name)
        guard result.shape == shape else {
            throw SafeTensorsError(file: url.path, tensor: name, kind: .shapeMismatch(expected: shape, found: result.shape))
        }
        return result
    }
}

/// Writes tensors to a safetensors file.
public enum SafeTensorsWriter {
    /// How to store the Float32 values.
    public enum Storage: Sendable {
        case float32, float16
    }

    /// Writes `tensors` in name order, atomically.
    public static func write(
        _ tensors: [String: Tensor], storage: Storage = .float32, metadata: [String: String] = [:], to url: URL
    ) throws {
        let names = tensors.keys.sorted()
        let elementSize = storage == .float32 ? 4 : 2
        var header: [String: JSONValue] = [:]
        if !metadata.isEmpty { header["__metadata__"] = .object(metadata.mapValues { .string($0) }) }
        var offset = 0
        for name in names {
            guard let tensor = tensors[name] else { continue }
            let bytes = tensor.count * elementSize
            header[name] = .object([
                "dtype": .string(storage == .float32 ? "F32" : "F16"),
                "shape": .array(tensor.shape.map { .int($0) }),
                "data_offsets": .array([.int(offset), .int(offset + bytes)]),
            ])
            offset += bytes
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var headerData = try encoder.encode(JSONValue.object(header))
        // Pad with spaces so the data section starts 8-byte aligned (F32 views stay aligned).
        while (headerData.count % 8) != 0 { headerData.append(UInt8(ascii: " ")) }
        var file = Data(capacity: 8 + headerData.count + offset)
        withUnsafeBytes(of: UInt64(headerData.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(headerData)
        for name in names {
            guard let tensor = tensors[name] else { continue }
            tensor.withUnsafeBufferPointer { values in
                switch storage {
                case .float32:
                    file.append(UnsafeBufferPointer(start: values.baseAddress, count: values.count))
                case .float16:
                    let halves = HalfPrecision.encodeFloat16(values.baseAddress!, count: values.count)
                    halves.withUnsafeBufferPointer { file.append($0) }
                }
            }
        }
        try writeAtomically(file, to: url)
    }
}
