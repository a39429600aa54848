import Foundation
import Kernels

/// The train and eval transforms of the image data sets, as torchvision / the RecursiveMix code define
/// them, on packed RGB bytes, writing normalised NHWC floats.
///
/// Which pipeline: `size ≤ 32` is CIFAR-like — train: RandomCrop(size, padding=4) with zero padding +
/// horizontal flip; eval: the image as is; CIFAR mean/std (RECURSIVEMIX_SPEC §4.2). Larger sizes are
/// ImageNet-like — train: RandomResizedCrop(size, scale 0.08–1, ratio 3/4–4/3, bilinear) + flip; eval:
/// resize the short side to ⌊size/0.875⌋ and centre-crop size×size; ImageNet mean/std (§4.3). A source
/// image that is not size×size in the CIFAR pipeline is first resized to size×size.
/// `augPlus` adds ColorJitter(0.4, 0.4, 0.4) in random order and PCA lighting(0.1) after the flip, on
/// [0, 1] values before normalising (§4.3).
///
/// Random numbers, drawn in this order from the sample's own stream: CIFAR — top offset, left offset,
/// flip; ImageNet — up to 10 × (area scale, log aspect ratio), then top, left, then flip; then with
/// augPlus the jitter order (a permutation of 3), the three jitter factors in the order applied, and the
/// three lighting normals. They depend on the source's size only, never on how it is decoded.
public struct ImageTransform: Sendable {
    public enum Pipeline: String, Sendable { case cifar, imageNet }
    public let size: Int
    public let pipeline: Pipeline
    public let normalization: Normalization
    public let augPlus: Bool
    public let dctScaling: Bool

    public init(size: Int, augPlus: Bool = false, dctScaling: Bool = true) {
        self.size = size
        pipeline = size <= 32 ? .cifar : .imageNet
        normalization = pipeline == .cifar ? .cifar : .imageNet
        self.augPlus = augPlus
        self.dctScaling = dctScaling
    }

    /// What to do with one sample, decided from the source size and the random stream before decoding
    /// (so a JPEG can be decoded at a reduced size that still covers the crop).
    struct Plan {
        // ImageNet pipeline: source box [x0, x1)×[y0, y1) and clip range in source pixels; the resize
        // target size and the window of it that is kept.
        var x0 = 0.0, y0 = 0.0, x1 = 0.0, y1 = 0.0
        var clipX = 0..<0, clipY = 0..<0
        var outW = 0, outH = 0, firstX = 0, firstY = 0
        // CIFAR pipeline: shift of the padded crop (−4…4).
        var shiftY = 0, shiftX = 0
        var flip = false
        var jitterOrder = SIMD3<Int32>(0, 1, 2)
        var jitter = SIMD3<Float>(0, 0, 0)            // brightness, contrast, saturation factors (0: none)
        var lighting = SIMD3<Float>(0, 0, 0)          // added to R, G, B
        var colour = false

        /// Smallest decoded size that keeps every output pixel at least one source pixel wide.
        func minimumDecode(width w: Int, height h: Int, pipeline: Pipeline, size: Int) -> (Double, Double) {
            if pipeline == .cifar { return (Double(size), Double(size)) }
            return (Double(w) * Double(outW) / (x1 - x0), Double(h) * Double(outH) / (y1 - y0))
        }
    }

    func plan(width w: Int, height h: Int, augment: Bool, rng: inout RandomStream) -> Plan {
        var p = Plan()
        switch (pipeline, augment) {
        case (.cifar, true):
            p.shiftY = rng.int(below: 9) - 4
            p.shiftX = rng.int(below: 9) - 4
            p.flip = rng.bernoulli(0.5)
        case (.cifar, false):
            break
        case (.imageNet, true):
            let (i, j, ch, cw) = ImageTransform.randomResizedCrop(width: w, height: h, rng: &rng)
            p.x0 = Double(j); p.x1 = Double(j + cw); p.y0 = Double(i); p.y1 = Double(i + ch)
            p.clipX = j..<(j + cw); p.clipY = i..<(i + ch)
            p.outW = size; p.outH = size
            p.flip = rng.bernoulli(0.5)
        case (.imageNet, false):
            // torchvision Resize(short side) then CenterCrop(size).
            let short = Int(Double(size) / 0.875 + 1e-9)
            if w <= h { p.outW = short; p.outH = Int(Double(short) * Double(h) / Double(w)) }
            else { p.outH = short; p.outW = Int(Double(short) * Double(w) / Double(h)) }
            p.x1 = Double(w); p.y1 = Double(h); p.clipX = 0..<w; p.clipY = 0..<h
            p.firstX = Int((Double(p.outW - size) / 2).rounded(.toNearestOrEven))
            p.firstY = Int((Double(p.outH - size) / 2).rounded(.toNearestOrEven))
        }
        if augment && augPlus {
            p.colour = true
            let order = rng.permutation(3)
            p.jitterOrder = SIMD3(Int32(order[0]), Int32(order[1]), Int32(order[2]))
            for t in order { p.jitter[t] = Float(rng.uniform(-0.4, 0.4)) }
            let a = (0..<3).map { _ in 0.1 * rng.normal() }
            for c in 0..<3 {
                var s = 0.0
                for k in 0..<3 { s += ImageTransform.eigvec[c][k] * a[k] * ImageTransform.eigval[k] }
                p.lighting[c] = Float(s)
            }
        }
        return p
    }

    /// torchvision `RandomResizedCrop.get_params`: 10 attempts at a crop of random area and aspect ratio
    /// that fits, else the centre crop clamped to the ratio range. Returns (top, left, height, width).
    static func randomResizedCrop(width: Int, height: Int, rng: inout RandomStream,
                                  scale: (Double, Double) = (0.08, 1), ratio: (Double, Double) = (3.0 / 4, 4.0 / 3))
        -> (Int, Int, Int, Int) {
        let area = Double(width * height)
        let logRatio = (Foundation.log(ratio.0), Foundation.log(ratio.1))
        for _ in 0..<10 {
            let target = area * rng.uniform(scale.0, scale.1)
            let aspect = Foundation.exp(rng.uniform(logRatio.0, logRatio.1))
            let w = Int((target * aspect).squareRoot().rounded(.toNearestOrEven))
            let h = Int((target / aspect).squareRoot().rounded(.toNearestOrEven))
            if w > 0 && w <= width && h > 0 && h <= height {
                let i = rng.int(below: height - h + 1)
                let j = rng.int(below: width - w + 1)
                return (i, j, h, w)
            }
        }
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < ratio.0 { h = Int((Double(w) / ratio.0).rounded(.toNearestOrEven)) }
        else if inRatio > ratio.1 { w = Int((Double(h) * ratio.1).rounded(.toNearestOrEven)) }
        return ((height - h) / 2, (width - w) / 2, h, w)
    }

    // PCA lighting constants of ImageNet (RECURSIVEMIX_SPEC §4.3; the RM code's dataset.py).
    static let eigval = [0.2175, 0.0188, 0.0045]
    static let eigvec = [[-0.5675, 0.7192, 0.4009],
                         [-0.5808, -0.0045, -0.8140],
                         [-0.5836, -0.6948, 0.4203]]

    /// Writes the sample: `pixels` is the (possibly DCT-downscaled) decode, `pw×ph`, of a `w×h` source.
    func render(_ p: Plan, pixels: UnsafePointer<UInt8>, pw: Int, ph: Int, width w: Int, height h: Int,
                into out: UnsafeMutablePointer<Float>, tables: (AxisTable, AxisTable), tmp: Scratch<Float>,
                base: Scratch<Float>) {
        let mean = SIMD3<Float>(normalization.mean[0], normalization.mean[1], normalization.mean[2])
        let std = SIMD3<Float>(normalization.std[0], normalization.std[1], normalization.std[2])
        // Without colour augmentation the normalisation is fused into the resampling; with it, work in [0, 1].
        let gain = p.colour ? SIMD3<Float>(repeating: 1 / 255) : 1 / (255 * std)
        let bias = p.colour ? SIMD3<Float>(repeating: 0) : -mean / std
        let (xt, yt) = tables
        switch pipeline {
        case .imageNet:
            let sx = Double(pw) / Double(w), sy = Double(ph) / Double(h)
            xt.compute(lo: Int((Double(p.clipX.lowerBound) * sx).rounded(.down)),
                       hi: min(pw, Int((Double(p.clipX.upperBound) * sx).rounded(.up))),
                       in0: p.x0 * sx, in1: p.x1 * sx, outSize: p.outW, first: p.firstX, count: size, reverse: p.flip)
            yt.compute(lo: Int((Double(p.clipY.lowerBound) * sy).rounded(.down)),
                       hi: min(ph, Int((Double(p.clipY.upperBound) * sy).rounded(.up))),
                       in0: p.y0 * sy, in1: p.y1 * sy, outSize: p.outH, first: p.firstY, count: size)
            Resampler.run(src: pixels, srcStride: pw * 3, x: xt, y: yt, dst: out, dstStride: size * 3,
                          gain: gain, bias: bias, tmp: tmp)
        case .cifar:
            let n = size
            var src: UnsafePointer<Float>? = nil
            if pw != n || ph != n {
                let b = base.reserve(n * n * 3)
                xt.compute(lo: 0, hi: pw, in0: 0, in1: Double(pw), outSize: n, first: 0, count: n)
                yt.compute(lo: 0, hi: ph, in0: 0, in1: Double(ph), outSize: n, first: 0, count: n)
                Resampler.run(src: pixels, srcStride: pw * 3, x: xt, y: yt, dst: b, dstStride: n * 3,
                              gain: gain, bias: bias, tmp: tmp)
                src = UnsafePointer(b)
            }
            // Padded crop + flip; padding is black (0 before normalising).
            for y in 0..<n {
                let sy = y + p.shiftY
                for x in 0..<n {
                    let sx = (p.flip ? n - 1 - x : x) + p.shiftX
                    let o = out + (y * n + x) * 3
                    if sy < 0 || sy >= n || sx < 0 || sx >= n {
                        o[0] = bias.x; o[1] = bias.y; o[2] = bias.z
                    } else if let src {
                        let s = src + (sy * n + sx) * 3
                        o[0] = s[0]; o[1] = s[1]; o[2] = s[2]
                    } else {
                        let s = pixels + (sy * n + sx) * 3
                        o[0] = Float(s[0]) * gain.x + bias.x
                        o[1] = Float(s[1]) * gain.y + bias.y
                        o[2] = Float(s[2]) * gain.z + bias.z
                    }
                }
            }
        }
        if p.colour { applyColour(p, out, pixels: size * size, mean: mean, std: std) }
    }

    /// ColorJitter + Lighting + Normalize on [0, 1] values (RM's utils.py: `img.lerp(target, α)`).
    func applyColour(_ p: Plan, _ out: UnsafeMutablePointer<Float>, pixels n: Int, mean: SIMD3<Float>, std: SIMD3<Float>) {
        let grey = SIMD3<Float>(0.2989, 0.587, 0.114)
        for k in 0..<3 {
            let t = Int(p.jitterOrder[k]), a = p.jitter[t]
            switch t {
            case 0:                                   // brightness: lerp towards black
                for i in 0..<(3 * n) { out[i] -= a * out[i] }
            case 1:                                   // contrast: towards the mean grey level
                var s = 0.0
                for i in 0..<n { s += Double(out[3 * i] * grey.x + out[3 * i + 1] * grey.y + out[3 * i + 2] * grey.z) }
                let m = Float(s / Double(n))
                for i in 0..<(3 * n) { out[i] += a * (m - out[i]) }
            default:                                  // saturation: towards each pixel's grey
                for i in 0..<n {
                    let o = out + 3 * i
                    let g = o[0] * grey.x + o[1] * grey.y + o[2] * grey.z
                    o[0] += a * (g - o[0]); o[1] += a * (g - o[1]); o[2] += a * (g - o[2])
                }
            }
        }
        let shift = (p.lighting - mean) / std, scale = 1 / std
        for i in 0..<n {
            let o = out + 3 * i
            o[0] = o[0] * scale.x + shift.x; o[1] = o[1] * scale.y + shift.y; o[2] = o[2] * scale.z + shift.z
        }
    }
}
