/// bfloat16 storage as raw UInt16 bits (the upper half of a float32): what `--allreduce-dtype bf16` sends.
/// Rounding is to nearest even and a NaN stays a quiet NaN, the same as oneDNN's and PyTorch's
/// `tensor.to(torch.bfloat16)`, and bit for bit as `rm_float_to_bf16` in `Sources/CMPI/shim.h` (the MPI
/// sum op), so a rank's own contribution rounds the same on both sides.
public enum BFloat16 {
    @inline(__always) public static func from(_ f: Float) -> UInt16 {
        let u = f.bitPattern
        if u & 0x7fff_ffff > 0x7f80_0000 { return UInt16(truncatingIfNeeded: u >> 16) | 0x40 }
        return UInt16(truncatingIfNeeded: (u &+ 0x7fff &+ ((u >> 16) & 1)) >> 16)
    }

    @inline(__always) public static func float(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    /// `f` rounded to the nearest bfloat16 value, as a float32.
    @inline(__always) public static func rounded(_ f: Float) -> Float { float(from(f)) }

    /// dst[i] = bf16(src[i]) for i in 0..<count.
    public static func round(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, count: Int) {
        Parallel.ranges(count, minPerTask: 1 << 16) { r in for i in r { dst[i] = from(src[i]) } }
    }

    /// dst[i] = float(src[i]) · scale for i in 0..<count (exact widening, then one float32 multiply).
    public static func widen(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count: Int, scale: Float) {
        Parallel.ranges(count, minPerTask: 1 << 16) { r in for i in r { dst[i] = float(src[i]) * scale } }
    }
}
