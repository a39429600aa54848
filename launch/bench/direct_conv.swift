// A register-blocked direct NHWC 3×3 stride-1 convolution in Swift SIMD (no patch matrix), forward, input
// gradient and weight gradient, timed on the model's shapes: the "direct kernels in Swift SIMD" candidate of
// issue #11, measured against oneDNN (launch/bench/onednn_shapes.c, same shapes, same pass split) before
// choosing. It is a measurement, not product code: the product keeps whichever wins (README, Benchmarks).
//
//   swiftc -Ounchecked -wmo -target-cpu skylake-avx512 launch/bench/direct_conv.swift -o /tmp/direct_conv
//   /tmp/direct_conv N H CIN COUT          e.g. 64 32 16 16   (one thread; prints ms per pass and GFLOP/s)
//
// Layouts: x, y NHWC; weights OHWI as the layers keep them, packed per call to [kh][kw][cin][cout] so that
// output channels are the vector lanes (16 per AVX-512 register). Each inner step broadcasts one input value
// of 8 neighbouring output pixels and multiplies it into one or two weight vectors: 8 or 16 accumulators
// stay in registers across the whole (kh, kw, cin) reduction. Borders: the input is copied once into a
// zero-padded buffer (its cost is in the timing). The weight gradient blocks 8 input channels × one or two
// output vectors and runs over every pixel. The input gradient is the forward kernel with CIN as its output
// channels, so CIN, like COUT, must be a multiple of 16 (the vector width). Each pass is checked against a
// plain loop first (exit 1 when they disagree; integration.sh builds and runs it on a small shape so that the
// harness keeps working).
import Foundation

typealias V = SIMD16<Float>
@inline(__always) func ld(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
@inline(__always) func st(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

func now() -> Double { var t = timespec(); clock_gettime(CLOCK_MONOTONIC, &t); return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9 }

/// Copies x [n, h, w, c] into xp [n, h+2, w+2, c] with a zero border.
func pad(_ x: UnsafePointer<Float>, _ xp: UnsafeMutablePointer<Float>, n: Int, h: Int, w: Int, c: Int) {
    let wp = w + 2, hp = h + 2
    xp.initialize(repeating: 0, count: n * hp * wp * c)
    for b in 0..<n { for i in 0..<h {
        (xp + ((b * hp + i + 1) * wp + 1) * c).update(from: x + (b * h + i) * w * c, count: w * c)
    } }
}

/// y[n, i, j, o] = Σ xp[n, i+kh, j+kw, c] · wk[kh][kw][c][o]; o in blocks of 32 (two vectors) or 16.
func forward(_ xp: UnsafePointer<Float>, _ wk: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
             n: Int, h: Int, w: Int, c: Int, o: Int) {
    let wp = w + 2, hp = h + 2
    for b in 0..<n { for i in 0..<h { var j = 0; while j < w {
        var ob = 0
        while ob + 32 <= o {
            var a0 = V(), a1 = V(), a2 = V(), a3 = V(), a4 = V(), a5 = V(), a6 = V(), a7 = V()
            var b0 = V(), b1 = V(), b2 = V(), b3 = V(), b4 = V(), b5 = V(), b6 = V(), b7 = V()
            for kh in 0..<3 { for kw in 0..<3 {
                let xr = xp + ((b * hp + i + kh) * wp + j + kw) * c
                let wr = wk + (kh * 3 + kw) * c * o + ob
                for ci in 0..<c {
                    let w0 = ld(wr + ci * o), w1 = ld(wr + ci * o + 16)
                    let p = xr + ci
                    var s = V(repeating: p[0]); a0 = a0.addingProduct(s, w0); b0 = b0.addingProduct(s, w1)
                    s = V(repeating: p[c]); a1 = a1.addingProduct(s, w0); b1 = b1.addingProduct(s, w1)
                    s = V(repeating: p[2 * c]); a2 = a2.addingProduct(s, w0); b2 = b2.addingProduct(s, w1)
                    s = V(repeating: p[3 * c]); a3 = a3.addingProduct(s, w0); b3 = b3.addingProduct(s, w1)
                    s = V(repeating: p[4 * c]); a4 = a4.addingProduct(s, w0); b4 = b4.addingProduct(s, w1)
                    s = V(repeating: p[5 * c]); a5 = a5.addingProduct(s, w0); b5 = b5.addingProduct(s, w1)
                    s = V(repeating: p[6 * c]); a6 = a6.addingProduct(s, w0); b6 = b6.addingProduct(s, w1)
                    s = V(repeating: p[7 * c]); a7 = a7.addingProduct(s, w0); b7 = b7.addingProduct(s, w1)
                }
            } }
            let yr = y + ((b * h + i) * w + j) * o + ob
            st(a0, yr); st(b0, yr + 16); st(a1, yr + o); st(b1, yr + o + 16)
            st(a2, yr + 2 * o); st(b2, yr + 2 * o + 16); st(a3, yr + 3 * o); st(b3, yr + 3 * o + 16)
            st(a4, yr + 4 * o); st(b4, yr + 4 * o + 16); st(a5, yr + 5 * o); st(b5, yr + 5 * o + 16)
            st(a6, yr + 6 * o); st(b6, yr + 6 * o + 16); st(a7, yr + 7 * o); st(b7, yr + 7 * o + 16)
            ob += 32
        }
        while ob < o {
            var a0 = V(), a1 = V(), a2 = V(), a3 = V(), a4 = V(), a5 = V(), a6 = V(), a7 = V()
            for kh in 0..<3 { for kw in 0..<3 {
                let xr = xp + ((b * hp + i + kh) * wp + j + kw) * c
                let wr = wk + (kh * 3 + kw) * c * o + ob
                for ci in 0..<c {
                    let w0 = ld(wr + ci * o), p = xr + ci
                    a0 = a0.addingProduct(V(repeating: p[0]), w0); a1 = a1.addingProduct(V(repeating: p[c]), w0)
                    a2 = a2.addingProduct(V(repeating: p[2 * c]), w0); a3 = a3.addingProduct(V(repeating: p[3 * c]), w0)
                    a4 = a4.addingProduct(V(repeating: p[4 * c]), w0); a5 = a5.addingProduct(V(repeating: p[5 * c]), w0)
                    a6 = a6.addingProduct(V(repeating: p[6 * c]), w0); a7 = a7.addingProduct(V(repeating: p[7 * c]), w0)
                }
            } }
            let yr = y + ((b * h + i) * w + j) * o + ob
            st(a0, yr); st(a1, yr + o); st(a2, yr + 2 * o); st(a3, yr + 3 * o)
            st(a4, yr + 4 * o); st(a5, yr + 5 * o); st(a6, yr + 6 * o); st(a7, yr + 7 * o)
            ob += 16
        }
        j += 8
    } } }
}

/// dw[kh][kw][c][o] = Σ_{n,i,j} xp[n, i+kh, j+kw, c] · dy[n, i, j, o]; 8 input channels × 32 outputs per block
/// (8 × 16 when o is not a multiple of 32).
func weightGradient(_ xp: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dw: UnsafeMutablePointer<Float>,
                    n: Int, h: Int, w: Int, c: Int, o: Int) {
    let wp = w + 2, hp = h + 2
    for kh in 0..<3 { for kw in 0..<3 {
        let dwr = dw + (kh * 3 + kw) * c * o
        if o % 32 == 0 {
            for cb in stride(from: 0, to: c, by: 8) { for ob in stride(from: 0, to: o, by: 32) {
                var a0 = V(), a1 = V(), a2 = V(), a3 = V(), a4 = V(), a5 = V(), a6 = V(), a7 = V()
                var b0 = V(), b1 = V(), b2 = V(), b3 = V(), b4 = V(), b5 = V(), b6 = V(), b7 = V()
                for b in 0..<n { for i in 0..<h {
                    let xr = xp + ((b * hp + i + kh) * wp + kw) * c + cb
                    let dr = dy + (b * h + i) * w * o + ob
                    for j in 0..<w {
                        let g0 = ld(dr + j * o), g1 = ld(dr + j * o + 16), p = xr + j * c
                        var s = V(repeating: p[0]); a0 = a0.addingProduct(s, g0); b0 = b0.addingProduct(s, g1)
                        s = V(repeating: p[1]); a1 = a1.addingProduct(s, g0); b1 = b1.addingProduct(s, g1)
                        s = V(repeating: p[2]); a2 = a2.addingProduct(s, g0); b2 = b2.addingProduct(s, g1)
                        s = V(repeating: p[3]); a3 = a3.addingProduct(s, g0); b3 = b3.addingProduct(s, g1)
                        s = V(repeating: p[4]); a4 = a4.addingProduct(s, g0); b4 = b4.addingProduct(s, g1)
                        s = V(repeating: p[5]); a5 = a5.addingProduct(s, g0); b5 = b5.addingProduct(s, g1)
                        s = V(repeating: p[6]); a6 = a6.addingProduct(s, g0); b6 = b6.addingProduct(s, g1)
                        s = V(repeating: p[7]); a7 = a7.addingProduct(s, g0); b7 = b7.addingProduct(s, g1)
                    }
                } }
                let r = dwr + cb * o + ob
                st(a0, r); st(b0, r + 16); st(a1, r + o); st(b1, r + o + 16); st(a2, r + 2 * o); st(b2, r + 2 * o + 16)
                st(a3, r + 3 * o); st(b3, r + 3 * o + 16); st(a4, r + 4 * o); st(b4, r + 4 * o + 16)
                st(a5, r + 5 * o); st(b5, r + 5 * o + 16); st(a6, r + 6 * o); st(b6, r + 6 * o + 16)
                st(a7, r + 7 * o); st(b7, r + 7 * o + 16)
            } }
        } else {
            for cb in stride(from: 0, to: c, by: 8) { for ob in stride(from: 0, to: o, by: 16) {
                var a0 = V(), a1 = V(), a2 = V(), a3 = V(), a4 = V(), a5 = V(), a6 = V(), a7 = V()
                for b in 0..<n { for i in 0..<h {
                    let xr = xp + ((b * hp + i + kh) * wp + kw) * c + cb
                    let dr = dy + (b * h + i) * w * o + ob
                    for j in 0..<w {
                        let g0 = ld(dr + j * o), p = xr + j * c
                        a0 = a0.addingProduct(V(repeating: p[0]), g0); a1 = a1.addingProduct(V(repeating: p[1]), g0)
                        a2 = a2.addingProduct(V(repeating: p[2]), g0); a3 = a3.addingProduct(V(repeating: p[3]), g0)
                        a4 = a4.addingProduct(V(repeating: p[4]), g0); a5 = a5.addingProduct(V(repeating: p[5]), g0)
                        a6 = a6.addingProduct(V(repeating: p[6]), g0); a7 = a7.addingProduct(V(repeating: p[7]), g0)
                    }
                } }
                let r = dwr + cb * o + ob
                st(a0, r); st(a1, r + o); st(a2, r + 2 * o); st(a3, r + 3 * o)
                st(a4, r + 4 * o); st(a5, r + 5 * o); st(a6, r + 6 * o); st(a7, r + 7 * o)
            } }
        }
    } }
}

/// OHWI [o][kh][kw][c] → [kh][kw][c][o] (forward), or → [2-kh][2-kw][o][c] (the input gradient's weights).
func pack(_ w: UnsafePointer<Float>, _ wk: UnsafeMutablePointer<Float>, c: Int, o: Int, flipped: Bool) {
    for oi in 0..<o { for kh in 0..<3 { for kw in 0..<3 { for ci in 0..<c {
        let v = w[((oi * 3 + kh) * 3 + kw) * c + ci]
        if flipped { wk[((2 - kh) * 3 + 2 - kw) * o * c + oi * c + ci] = v }
        else { wk[(kh * 3 + kw) * c * o + ci * o + oi] = v }
    } } } }
}

/// [kh][kw][c][o] → OHWI.
func unpack(_ wk: UnsafePointer<Float>, _ w: UnsafeMutablePointer<Float>, c: Int, o: Int) {
    for oi in 0..<o { for kh in 0..<3 { for kw in 0..<3 { for ci in 0..<c {
        w[((oi * 3 + kh) * 3 + kw) * c + ci] = wk[(kh * 3 + kw) * c * o + ci * o + oi]
    } } } }
}

func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
    for i in 0..<count { p[i] = Float((i * 7919) % 100) / 100 - 0.5 }
    return p
}

let a = CommandLine.arguments.dropFirst().compactMap { Int($0) }
guard a.count == 4, a[1] % 8 == 0, a[2] % 16 == 0, a[3] % 16 == 0 else {
    print("usage: direct_conv N H CIN COUT   (H a multiple of 8, CIN and COUT of 16)"); exit(2)
}
let (n, h, c, o) = (a[0], a[1], a[2], a[3])
let x = buffer(n * h * h * c), w = buffer(o * 9 * c), dy = buffer(n * h * h * o)
let y = buffer(n * h * h * o), dx = buffer(n * h * h * c), dw = buffer(o * 9 * c)
let xp = buffer(n * (h + 2) * (h + 2) * max(c, o)), wk = buffer(o * 9 * c)

// The three passes as a layer would run them, each from and to the layer's own layouts.
func runForward() { pad(x, xp, n: n, h: h, w: h, c: c); pack(w, wk, c: c, o: o, flipped: false)
    forward(xp, wk, y, n: n, h: h, w: h, c: c, o: o) }
func runWeightGradient() { pad(x, xp, n: n, h: h, w: h, c: c)
    weightGradient(xp, dy, wk, n: n, h: h, w: h, c: c, o: o); unpack(wk, dw, c: c, o: o) }
func runInputGradient() { pad(dy, xp, n: n, h: h, w: h, c: o); pack(w, wk, c: c, o: o, flipped: true)
    forward(xp, wk, dx, n: n, h: h, w: h, c: o, o: c) }

// Check each pass against a plain loop at a few points (the whole tensor would take minutes at 64 channels).
func xAt(_ b: Int, _ i: Int, _ j: Int, _ ci: Int) -> Float {
    (i < 0 || j < 0 || i >= h || j >= h) ? 0 : x[((b * h + i) * h + j) * c + ci] }
func dyAt(_ b: Int, _ i: Int, _ j: Int, _ oi: Int) -> Float {
    (i < 0 || j < 0 || i >= h || j >= h) ? 0 : dy[((b * h + i) * h + j) * o + oi] }
func wAt(_ oi: Int, _ kh: Int, _ kw: Int, _ ci: Int) -> Float { w[((oi * 3 + kh) * 3 + kw) * c + ci] }
runForward(); runWeightGradient(); runInputGradient()
var worst: Float = 0
for t in 0..<50 {
    let b = (t * 13) % n, i = (t * 5) % h, j = (t * 11 + 3) % h, oi = (t * 7) % o, ci = (t * 3) % c
    var ry: Float = 0, rdx: Float = 0
    for kh in 0..<3 { for kw in 0..<3 {
        for cc in 0..<c { ry += xAt(b, i + kh - 1, j + kw - 1, cc) * wAt(oi, kh, kw, cc) }
        for oo in 0..<o { rdx += dyAt(b, i - kh + 1, j - kw + 1, oo) * wAt(oo, kh, kw, ci) }
    } }
    let kh = t % 3, kw = (t / 3) % 3
    var rdw: Float = 0
    for bb in 0..<n { for ii in 0..<h { for jj in 0..<h { rdw += xAt(bb, ii + kh - 1, jj + kw - 1, ci) * dyAt(bb, ii, jj, oi) } } }
    worst = max(worst, abs(ry - y[((b * h + i) * h + j) * o + oi]) / max(1, abs(ry)),
                abs(rdx - dx[((b * h + i) * h + j) * c + ci]) / max(1, abs(rdx)),
                abs(rdw - dw[((oi * 3 + kh) * 3 + kw) * c + ci]) / max(1, abs(rdw)))
}

func best(_ f: () -> Void) -> Double {
    var t = Double.infinity
    for rep in 0..<8 { let t0 = now(); f(); if rep >= 2 { t = min(t, now() - t0) } }
    return t
}
let tf = best(runForward), tw = best(runWeightGradient), td = best(runInputGradient)
let flops = 2.0 * Double(n * h * h * o * c * 9) * 3
print(String(format: "  swift   fwd %7.3f bww %7.3f bwd %7.3f total %7.3f ms  %5.0f GF/s  (worst relative error %.1e)",
             tf * 1e3, tw * 1e3, td * 1e3, (tf + tw + td) * 1e3, flops / (tf + tw + td) / 1e9, worst))
if !(worst < 1e-4) { print("direct_conv: a pass disagrees with the plain loop (\(worst))"); exit(1) }
