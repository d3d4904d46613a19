/// The byte-level alphabet of GPT-2 and CLIP BPE: each of the 256 byte values stands for a
/// printable character (printable Latin-1 bytes for themselves, the rest for code points from
/// 256 on), so any UTF-8 text becomes a string of vocabulary symbols.
enum ByteSymbols {
    /// Byte value -> its symbol.
    static let encoder: [Character] = {
        let printable = Array(33...126) + Array(161...172) + Array(174...255)
        var table = [Character](repeating: " ", count: 256)
        var extra = 0
        for byte in 0..<256 {
            if printable.contains(byte) {
                table[byte] = Character(Unicode.Scalar(UInt8(byte)))
            } else {
                table[byte] = Character(Unicode.Scalar(UInt32(256 + extra))!)
                extra += 1
            }
        }
        return table
    }()

    /// Symbol -> byte value.
    static let decoder: [Character: UInt8] = {
        var table: [Character: UInt8] = [:]
        for (byte, symbol) in encoder.enumerated() { table[symbol] = UInt8(byte) }
        return table
    }()
}
