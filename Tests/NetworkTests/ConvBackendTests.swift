import Kernels
import Layers
import XCTest

/// oneDNN's convolutions against the portable im2col + sgemm path (itself checked against finite
/// differences and PyTorch's golden values) on every shape class the models use: 1×1 and 3×3 at stride 1
/// and 2, the 7×7 stem, batch 1, odd sizes, maps of 2×2 and 1×1, and a batch that changes between calls
/// (the last batch of an epoch) with weights that change between steps.
final class ConvBackendTests: XCTestCase {
    typealias GC = GradientCheck

    override func tearDown() { ConvBackend.current = .onednn }

    struct Pass: Equatable { var y: [Float], dx: [Float], dw: [Float] }

    /// Forward, then backward with a fixed upstream gradient, for each (batch, weight seed) in `calls`.
    func run(_ backend: ConvBackend, cin: Int, cout: Int, k: Int, s: Int, p: Int, size: Int,
             calls: [(Int, UInt64)]) -> [Pass] {
        ConvBackend.current = backend
        let conv = Conv2d("conv", cin, cout, kernel: k, stride: s, padding: p)
        return calls.map { n, seed in
            conv.weight.value.copy(from: GC.randomTensor(conv.weight.value.shape, seed: seed, stream: 2, scale: 0.2))
            let x = GC.randomTensor([n, size, size, cin], seed: seed, stream: 1)
            let r = GC.randomTensor(conv.outputShape(x.shape), seed: seed, stream: 4)
            conv.weight.grad.zero()
            let y = conv.forward(x, training: true).array
            let dx = conv.backward(r).array
            return Pass(y: y, dx: dx, dw: conv.weight.grad.array)
        }
    }

    func relative(_ a: [Float], _ b: [Float]) -> Double {
        var d = 0.0, n = 0.0
        for (x, y) in zip(a, b) { d += Double(x - y) * Double(x - y); n += Double(y) * Double(y) }
        return (d / max(n, 1e-30)).squareRoot()
    }

    func testOneDNNMatchesThePortablePathOnEveryShapeClass() {
        // (cin, cout, kernel, stride, pad, size)
        let shapes = [(16, 16, 3, 1, 1, 32), (16, 32, 3, 2, 1, 32), (16, 32, 1, 2, 0, 32), (64, 64, 3, 1, 1, 8),
                      (3, 16, 3, 1, 1, 32), (3, 8, 7, 2, 3, 23), (6, 5, 3, 1, 1, 9), (6, 5, 1, 1, 0, 9),
                      (4, 6, 3, 2, 1, 9), (32, 64, 3, 2, 1, 4), (64, 64, 3, 1, 1, 2), (64, 64, 3, 1, 1, 1),
                      (32, 64, 1, 2, 0, 4), (3, 16, 3, 1, 1, 8), (16, 16, 3, 1, 1, 8), (16, 32, 3, 2, 1, 8),
                      (16, 32, 1, 2, 0, 8), (32, 32, 3, 1, 1, 4), (32, 64, 3, 2, 1, 4), (64, 64, 3, 1, 1, 2)]
        let calls: [(Int, UInt64)] = [(4, 1), (1, 2), (4, 3), (3, 4), (6, 5), (2, 6), (6, 7)]
        for (cin, cout, k, s, p, size) in shapes {
            let tag = "conv\(k)x\(k) s\(s) \(cin)->\(cout) at \(size)x\(size)"
            let fast = run(.onednn, cin: cin, cout: cout, k: k, s: s, p: p, size: size, calls: calls)
            let slow = run(.portable, cin: cin, cout: cout, k: k, s: s, p: p, size: size, calls: calls)
            for (i, (f, q)) in zip(fast, slow).enumerated() {
                XCTAssertLessThanOrEqual(relative(f.y, q.y), 1e-5, "\(tag), call \(i): forward")
                XCTAssertLessThanOrEqual(relative(f.dx, q.dx), 1e-5, "\(tag), call \(i): input gradient")
                XCTAssertLessThanOrEqual(relative(f.dw, q.dw), 1e-5, "\(tag), call \(i): weight gradient")
            }
            // Repeatable: the same calls again give the same bits.
            XCTAssertEqual(fast, run(.onednn, cin: cin, cout: cout, k: k, s: s, p: p, size: size, calls: calls), tag)
        }
    }
}
