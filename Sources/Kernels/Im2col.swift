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
    let bytesPerRun = c
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
                        dst.update(repeating: 0, count: g.kw * c)
                        dst += g.kw * c
                        continue
                    }
                    let rowBase = image + iy * g.w * c
                    let ix0 = ox * g.stride - g.pad
                    if ix0 >= 0 && ix0 + g.kw <= g.w {
                        // The kw taps of this kernel row are contiguous in NHWC: one copy.
                        dst.update(from: rowBase + ix0 * c, count: g.kw * bytesPerRun)
                        dst += g.kw * c
                    } else {
                        for kx in 0..<g.kw {
                            let ix = ix0 + kx
                            if ix < 0 || ix >= g.w { dst.update(repeating: 0, count: c) }
                            else { dst.update(from: rowBase + ix * c, count: c) }
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
