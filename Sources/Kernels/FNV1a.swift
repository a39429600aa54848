/// FNV-1a, 64-bit: a stable hash of bytes (Swift's `Hasher` is seeded per process, so it cannot be
/// compared across ranks or runs). Used for checkpoint sections, shard records, configuration and data
/// fingerprints, and parameter checksums.
public struct FNV1a: Sendable {
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    public static let prime: UInt64 = 0x100_0000_01b3
    public private(set) var value: UInt64

    public init(_ value: UInt64 = FNV1a.offsetBasis) { self.value = value }

    public mutating func add<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        var h = value
        for b in bytes { h = (h ^ UInt64(b)) &* FNV1a.prime }
        value = h
    }

    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var h = value
        for b in bytes { h = (h ^ UInt64(b)) &* FNV1a.prime }
        value = h
    }

    public mutating func add(_ string: String) { add(string.utf8); add(CollectionOfOne(0)) }

    public mutating func add(_ n: Int) { withUnsafeBytes(of: Int64(n).littleEndian) { add($0) } }

    public static func hash<S: Sequence>(_ bytes: S) -> UInt64 where S.Element == UInt8 {
        var h = FNV1a(); h.add(bytes); return h.value
    }

    public static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 { var h = FNV1a(); h.add(bytes); return h.value }
}
