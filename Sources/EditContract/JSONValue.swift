import Foundation

/// Any JSON value, for configuration files whose keys vary between model versions.
public enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int.self) { self = .int(value) }
        else if let value = try? container.decode(Double.self) { self = .double(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let v): try container.encode(v)
        case .int(let v): try container.encode(v)
        case .double(let v): try container.encode(v)
        case .string(let v): try container.encode(v)
        case .array(let v): try container.encode(v)
        case .object(let v): try container.encode(v)
        }
    }

    /// Parses JSON text. With `allowingNonFiniteNumbers`, also the `NaN`, `Infinity` and
    /// `-Infinity` that Python's json module writes (diffusers' configs hold them, for example
    /// `"lambda_min_clipped": -Infinity`).
    public static func parse(_ data: Data, allowingNonFiniteNumbers: Bool = false) throws -> JSONValue {
        let decoder = JSONDecoder()
        // JSON5 is the decoder's only mode that reads them.
        decoder.allowsJSON5 = allowingNonFiniteNumbers
        return try decoder.decode(JSONValue.self, from: data)
    }

    public var objectValue: [String: JSONValue]? { if case .object(let v) = self { return v } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let v) = self { return v } else { return nil } }
    public var stringValue: String? { if case .string(let v) = self { return v } else { return nil } }
    public var boolValue: Bool? { if case .bool(let v) = self { return v } else { return nil } }
    /// An integer, also from a float with no fractional part (configs written by Python vary).
    public var intValue: Int? {
        switch self {
        case .int(let v): return v
        case .double(let v) where v.rounded() == v && abs(v) < 1e15: return Int(v)
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .int(let v): return Double(v)
        case .double(let v): return v
        default: return nil
        }
    }
    public subscript(key: String) -> JSONValue? { objectValue?[key] }
}
