/// Eight-float vectors for the loops the compiler does not vectorise on its own (reductions into
/// per-channel accumulators, where it cannot prove the pointers do not alias). With the AVX2 target
/// these are single ymm loads, stores and arithmetic.
public typealias Float8 = SIMD8<Float>

@inline(__always)
public func load8(_ p: UnsafePointer<Float>) -> Float8 {
    UnsafeRawPointer(p).loadUnaligned(as: Float8.self)
}

@inline(__always)
public func load8(_ p: UnsafeMutablePointer<Float>) -> Float8 {
    UnsafeRawPointer(p).loadUnaligned(as: Float8.self)
}

@inline(__always)
public func store8(_ v: Float8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Float8.self)
}

extension Tensor {
    /// No NaN or infinity: x·0 is 0 for finite x and NaN otherwise, summed eight lanes at a time.
    public var isFinite: Bool {
        var acc = Float8()
        var i = 0
        while i + 8 <= count { acc += load8(data + i) * 0; i += 8 }
        var rest: Float = 0
        while i < count { rest += data[i] * 0; i += 1 }
        return acc.sum() == 0 && rest == 0
    }
}
