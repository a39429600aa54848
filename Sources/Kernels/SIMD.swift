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
