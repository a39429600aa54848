import Foundation
import Kernels
@testable import Mixing

/// Shared helpers for the Mixing tests.
enum Support {
    /// A tensor of N(0, scale²) values from a fixed stream.
    static func randomTensor(_ shape: [Int], seed: UInt64, scale: Double = 1) -> Tensor {
        var rng = RandomStream(seed: seed, stream: 0x7E57)
        let t = Tensor(shape: shape)
        for i in 0..<t.count { t[i] = Float(rng.normal() * scale) }
        return t
    }

    /// NHWC index.
    static func at(_ t: Tensor, _ n: Int, _ y: Int, _ x: Int, _ c: Int) -> Int {
        ((n * t.h + y) * t.w + x) * t.c + c
    }

    /// torchvision's RoIAlign 1×1 (aligned, adaptive grid) written as its CPU loop is, per sample point,
    /// in Double: an independent reference for the weight-map implementation.
    static func referenceRoIAlign(_ f: Tensor, n: Int, channel: Int, box: Box, scale s: Double) -> Double {
        let h = f.h, w = f.w
        let sw = Double(box.x1) * s - 0.5, sh = Double(box.y1) * s - 0.5
        let rw = Double(box.x2) * s - 0.5 - sw, rh = Double(box.y2) * s - 0.5 - sh
        let gh = Int(rh.rounded(.up)), gw = Int(rw.rounded(.up))
        let count = Double(max(gh * gw, 1))
        var v = 0.0
        func px(_ y: Int, _ x: Int) -> Double { Double(f[at(f, n, y, x, channel)]) }
        for iy in 0..<max(gh, 0) {
            for ix in 0..<max(gw, 0) {
                var y = sh + (Double(iy) + 0.5) * rh / Double(gh)
                var x = sw + (Double(ix) + 0.5) * rw / Double(gw)
                if y < -1 || y > Double(h) || x < -1 || x > Double(w) { continue }
                if y <= 0 { y = 0 }
                if x <= 0 { x = 0 }
                var yl = Int(y), xl = Int(x), yh: Int, xh: Int
                if yl >= h - 1 { yl = h - 1; yh = yl; y = Double(yl) } else { yh = yl + 1 }
                if xl >= w - 1 { xl = w - 1; xh = xl; x = Double(xl) } else { xh = xl + 1 }
                let ly = y - Double(yl), lx = x - Double(xl), hy = 1 - ly, hx = 1 - lx
                v += hy * hx * px(yl, xl) + hy * lx * px(yl, xh) + ly * hx * px(yh, xl) + ly * lx * px(yh, xh)
            }
        }
        return v / count
    }
}
