import CZstd
import Foundation
import NIOCore

/// A tensor on the wire: name, element type, shape and little-endian bytes.
public struct TensorPayload: Sendable, Equatable {
    public enum ElementType: UInt8, Sendable {
        case float32 = 1
        case float16 = 2
        case uint8 = 3

        public var size: Int {
            switch self {
            case .float32: return 4
            case .float16: return 2
            case .uint8: return 1
            }
        }
    }

    public var name: String
    public var elementType: ElementType
    public var shape: [Int]
    public var bytes: [UInt8]

    public init(name: String, elementType: ElementType, shape: [Int], bytes: [UInt8]) {
        precondition(shape.reduce(1, *) * elementType.size == bytes.count, "tensor \(name): \(bytes.count) bytes for shape \(shape)")
        self.name = name
        self.elementType = elementType
        self.shape = shape
        self.bytes = bytes
    }

    /// Float32 values.
    public init(name: String, shape: [Int], floats: [Float]) {
        self.init(name: name, elementType: .float32, shape: shape, bytes: floats.withUnsafeBytes { Array($0) })
    }

    /// The values as Float32 (converting from float16).
    public var floats: [Float] {
        switch elementType {
        case .float32:
            return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        case .float16:
            return bytes.withUnsafeBytes { raw in
                (0..<(bytes.count / 2)).map { Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
            }
        case .uint8:
            return bytes.map(Float.init)
        }
    }

    /// The same values in float16 (lossy: for transport where exactness is not needed).
    public func toFloat16() -> TensorPayload {
        guard elementType == .float32 else { return self }
        let halves = floats.map { Float16($0).bitPattern }
        return TensorPayload(name: name, elementType: .float16, shape: shape, bytes: halves.withUnsafeBytes { Array($0) })
    }
}

/// How tensors are packed into frames.
public struct TensorCodec: Sendable, Equatable {
    /// zstd level (1-19), or nil for raw bytes.
    public var zstdLevel: Int32?
    /// Groups the bytes of each element by significance before compressing (floats compress
    /// much better: exponents and signs line up).
    public var shuffle: Bool
    /// Largest decompressed tensor accepted.
    public var limit: Int

    public init(zstdLevel: Int32? = 3, shuffle: Bool = true, limit: Int = WireProtocol.defaultTensorLimit) {
        self.zstdLevel = zstdLevel
        self.shuffle = shuffle
        self.limit = limit
    }

    static let codecRaw: UInt8 = 0, codecZstd: UInt8 = 1

    /// name, type, rank, dims, codec, shuffle, raw size, CRC-32 of the raw bytes, stored bytes.
    public func encode(_ tensor: TensorPayload, into buffer: inout ByteBuffer) throws {
        buffer.writeField(tensor.name)
        buffer.writeInteger(tensor.elementType.rawValue)
        buffer.writeInteger(UInt8(tensor.shape.count))
        for d in tensor.shape { buffer.writeInteger(UInt32(d)) }
        var raw = tensor.bytes
        if shuffle && tensor.elementType.size > 1 { raw = Self.shuffled(raw, width: tensor.elementType.size) }
        let checksum = CRC32.checksum(tensor.bytes)
        if let zstdLevel {
            let bound = ZSTD_compressBound(raw.count)
            var compressed = [UInt8](repeating: 0, count: bound)
            let size = compressed.withUnsafeMutableBytes { out in
                raw.withUnsafeBytes { ZSTD_compress(out.baseAddress, bound, $0.baseAddress, raw.count, zstdLevel) }
            }
            guard ZSTD_isError(size) == 0 else {
                throw WireError(.internalError, "zstd compression failed: \(String(cString: ZSTD_getErrorName(size)))")
            }
            buffer.writeInteger(Self.codecZstd)
            buffer.writeInteger(UInt8(shuffle ? 1 : 0))
            buffer.writeInteger(UInt64(tensor.bytes.count))
            buffer.writeInteger(checksum)
            buffer.writeInteger(UInt32(size))
            buffer.writeBytes(compressed.prefix(size))
        } else {
            buffer.writeInteger(Self.codecRaw)
            buffer.writeInteger(UInt8(shuffle ? 1 : 0))
            buffer.writeInteger(UInt64(tensor.bytes.count))
            buffer.writeInteger(checksum)
            buffer.writeInteger(UInt32(raw.count))
            buffer.writeBytes(raw)
        }
    }

    /// Reads a tensor, checking the declared size against the shape, the limit and the zstd
    /// frame's own content size before anything is decompressed, and the checksum after.
    public func decode(from buffer: inout ByteBuffer) throws -> TensorPayload {
        var budget = limit
        return try decode(from: &buffer, budget: &budget)
    }

    /// Reads a tensor of at most `budget` decompressed bytes (also checked before anything is
    /// allocated), and takes its size from the budget: one message's tensors share one budget.
    public func decode(from buffer: inout ByteBuffer, budget: inout Int) throws -> TensorPayload {
        let name = try buffer.readString(field: "tensor name", limit: 1024)
        guard let elementType = TensorPayload.ElementType(rawValue: try buffer.readInteger(field: "tensor type", as: UInt8.self)) else {
            throw WireError(.tensorRejected, "tensor \(name): unknown element type")
        }
        let rank = Int(try buffer.readInteger(field: "tensor rank", as: UInt8.self))
        guard rank <= 8 else { throw WireError(.tensorRejected, "tensor \(name): rank \(rank) over 8") }
        var count = 1
        var shape: [Int] = []
        for _ in 0..<rank {
            let d = Int(try buffer.readInteger(field: "tensor shape", as: UInt32.self))
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw WireError(.tensorRejected, "tensor \(name): shape overflows") }
            count = product
            shape.append(d)
        }
        let codec = try buffer.readInteger(field: "tensor codec", as: UInt8.self)
        let shuffled = try buffer.readInteger(field: "tensor shuffle", as: UInt8.self) != 0
        let rawSize = Int(clamping: try buffer.readInteger(field: "tensor size", as: UInt64.self))
        let checksum = try buffer.readInteger(field: "tensor checksum", as: UInt32.self)
        let storedSize = Int(try buffer.readInteger(field: "tensor data", as: UInt32.self))
        let (expected, overflow) = count.multipliedReportingOverflow(by: elementType.size)
        guard !overflow, rawSize == expected else {
            throw WireError(.tensorRejected, "tensor \(name): declares \(rawSize) bytes, its shape \(shape) needs \(overflow ? Int.max : expected)")
        }
        guard rawSize <= limit else { throw WireError(.tensorRejected, "tensor \(name): \(rawSize) bytes exceed the limit of \(limit)") }
        guard rawSize <= budget else {
            throw WireError(.tensorRejected, "tensor \(name): \(rawSize) bytes exceed what is left of the message's limit (\(budget) bytes)")
        }
        budget -= rawSize
        guard storedSize <= buffer.readableBytes else { throw WireError(.malformed, "tensor \(name): data truncated") }
        var raw: [UInt8]
        switch codec {
        case Self.codecRaw:
            guard storedSize == rawSize else { throw WireError(.tensorRejected, "tensor \(name): raw data of \(storedSize) bytes for \(rawSize)") }
            raw = buffer.readBytes(length: storedSize) ?? []
        case Self.codecZstd:
            let compressed = buffer.readBytes(length: storedSize) ?? []
            // The zstd frame states its decompressed size; it must be known and be the declared one.
            let content = compressed.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, compressed.count) }
            guard content != ZSTD_CONTENTSIZE_UNKNOWN, content != ZSTD_CONTENTSIZE_ERROR, content == UInt64(rawSize) else {
                throw WireError(.tensorRejected, "tensor \(name): the zstd frame does not state its size as \(rawSize) bytes")
            }
            // Decompression is the one cost a peer can multiply (a 32 KB frame can state 1 GiB):
            // beyond a free allowance, no tensor may expand more than real data ever does.
            guard rawSize <= max(Self.ratioFreeBytes, storedSize.multipliedReportingOverflow(by: Self.maximumRatio).partialValue) else {
                throw WireError(.tensorRejected, "tensor \(name): \(storedSize) bytes of zstd expanding to \(rawSize) (over \(Self.maximumRatio):1 above \(Self.ratioFreeBytes >> 20) MiB)")
            }
            raw = [UInt8](repeating: 0, count: rawSize)
            let written = raw.withUnsafeMutableBytes { out in
                compressed.withUnsafeBytes { ZSTD_decompress(out.baseAddress, rawSize, $0.baseAddress, compressed.count) }
            }
            guard ZSTD_isError(written) == 0, written == rawSize else {
                throw WireError(.tensorRejected, "tensor \(name): corrupt zstd data")
            }
        default:
            throw WireError(.tensorRejected, "tensor \(name): unknown codec \(codec)")
        }
        if shuffled && elementType.size > 1 { raw = Self.unshuffled(raw, width: elementType.size) }
        guard CRC32.checksum(raw) == checksum else { throw WireError(.tensorRejected, "tensor \(name): checksum mismatch") }
        return TensorPayload(name: name, elementType: elementType, shape: shape, bytes: raw)
    }

    /// The most a zstd tensor over `ratioFreeBytes` may expand (model tensors reach a few to one).
    public static let maximumRatio = 1024
    public static let ratioFreeBytes = 64 << 20

    /// Byte i of every element together: [b0 b0 b0 ... b1 b1 b1 ...].
    static func shuffled(_ bytes: [UInt8], width: Int) -> [UInt8] {
        let count = bytes.count / width
        var out = [UInt8](repeating: 0, count: bytes.count)
        for e in 0..<count { for b in 0..<width { out[b * count + e] = bytes[e * width + b] } }
        return out
    }

    static func unshuffled(_ bytes: [UInt8], width: Int) -> [UInt8] {
        let count = bytes.count / width
        var out = [UInt8](repeating: 0, count: bytes.count)
        for e in 0..<count { for b in 0..<width { out[e * width + b] = bytes[b * count + e] } }
        return out
    }
}
