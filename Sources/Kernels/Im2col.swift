/// Patch extraction for convolution as GEMM, NHWC.
///
/// `col` has one row per output pixel of `images` images and `kh·kw·c` columns ordered (ky, kx, channel),
/// matching the weight layout [Cout, kh, kw, Cin]. Out-of-image taps (padding) are zeros.
public struct ConvGeometry: Sendable, Equatable {
    public var h: Int, w: Int, c: Int          // input
    public var kh: Int, kw: Int
    public var stride: Int, pad: Int
    public var oh: Int { (h + 2 * pad - kh) / stride + 1 }
    public var ow: Int { (w + 2 * pad - kw) / stride + 1 }
    public var patch: Int { kh * kw * c }
    /// A 1×1, stride-1, unpadded convolution reads its input as the GEMM operand directly.
    public var isPointwise: Bool { kh == 1 && kw == 1 && stride == 1 && pad == 0 }

    public init(h: Int, w: Int, c: Int, kh: Int, kw: Int, stride: Int, pad: Int) {
        self.h = h; self.w = w; self.c = c; self.kh = kh; self.kw = kw; self.stride = stride; self.pad = pad
    }
}

public func im2col(_ x: UnsafePointer<Float>, images: Int, _ g: ConvGeometry, col: UnsafeMutablePointer<Float>) {
    let oh = g.oh, ow = g.ow, c = g.c, patch = g.patch
    let rowsPerImage = oh * ow
    // Sequential: callers parallelise over chunks of images (see Conv2d).
    do {
        for r in 0..<(images * oh) {
            let n = r / oh, oy = r % oh
            let image = x + n * g.h * g.w * c
            var dst = col + (n * rowsPerImage + oy * ow) * patch
            for ox in 0..<ow {
                for ky in 0..<g.kh {
                    let iy = oy * g.stride - g.pad + ky
                    if iy < 0 || iy >= g.h {
                        zeroFloats(dst, g.kw * c)
                        dst += g.kw * c
                        continue
                    }
                    let rowBase = image + iy * g.w * c
                    let ix0 = ox * g.stride - g.pad
                    if ix0 >= 0 && ix0 + g.kw <= g.w {
                        // The kw taps of this kernel row are contiguous in NHWC: one copy.
                        copyFloats(dst, rowBase + ix0 * c, g.kw * c)
                        dst += g.kw * c
                    } else {
                        for kx in 0..<g.kw {
                            let ix = ix0 + kx
                            if ix < 0 || ix >= g.w { zeroFloats(dst, c) }
                            else { copyFloats(dst, rowBase + ix * c, c) }
                            dst += c
                        }
                    }
                }
            }
        }
    }
}

/// Adds the patch gradients back to the input gradient (the adjoint of `im2col`). `dx` is overwritten.
public func col2im(_ col: UnsafePointer<Float>, images: Int, _ g: ConvGeometry, dx: UnsafeMutablePointer<Float>) {
    let oh = g.oh, ow = g.ow, c = g.c, patch = g.patch
    let imageSize = g.h * g.w * c
    // Sequential: callers parallelise over chunks of images (see Conv2d); the sums' order is fixed.
    for n in 0..<images {
        let image = dx + n * imageSize
        image.update(repeating: 0, count: imageSize)
        var src = col + n * oh * ow * patch
        for oy in 0..<oh {
            for ox in 0..<ow {
                for ky in 0..<g.kh {
                    let iy = oy * g.stride - g.pad + ky
                    if iy < 0 || iy >= g.h { src += g.kw * c; continue }
                    let rowBase = image + iy * g.w * c
                    for kx in 0..<g.kw {
                        let ix = ox * g.stride - g.pad + kx
                        if ix >= 0 && ix < g.w {
                            let d = rowBase + ix * c
                            for ch in 0..<c { d[ch] += src[ch] }
                        }
                        src += c
                    }
                }
            }
        }
    }
}

/// Copies of a few channels' worth (48 floats for three taps of 16 channels): inline vector moves,
/// where a memmove call per run costs more than the copy.
@inline(__always)
func copyFloats(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int) {
    if n % 8 == 0 && n <= 512 {
        var i = 0
        while i < n { store8(load8(src + i), dst + i); i += 8 }
    } else {
        dst.update(from: src, count: n)
    }
}

@inline(__always)
func zeroFloats(_ dst: UnsafeMutablePointer<Float>, _ n: Int) {
    if n % 8 == 0 && n <= 512 {
        var i = 0
        while i < n { store8(Float8(), dst + i); i += 8 }
    } else {
        dst.update(repeating: 0, count: n)
    }
}
