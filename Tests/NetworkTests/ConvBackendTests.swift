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
            let fast = ConvRuns.run(.onednn, cin: cin, cout: cout, k: k, s: s, p: p, size: size, calls: calls)
            let slow = ConvRuns.run(.portable, cin: cin, cout: cout, k: k, s: s, p: p, size: size, calls: calls)
            for (i, (f, q)) in zip(fast, slow).enumerated() {
                XCTAssertLessThanOrEqual(ConvRuns.relative(f.y, q.y), 1e-5, "\(tag), call \(i): forward")
                XCTAssertLessThanOrEqual(ConvRuns.relative(f.dx, q.dx), 1e-5, "\(tag), call \(i): input gradient")
                XCTAssertLessThanOrEqual(ConvRuns.relative(f.dw, q.dw), 1e-5, "\(tag), call \(i): weight gradient")
            }
            // Repeatable: the same calls again give the same bits.
            XCTAssertEqual(fast, ConvRuns.run(.onednn, cin: cin, cout: cout, k: k, s: s, p: p, size: size, calls: calls), tag)
        }
    }

    /// Winograd F(4,3) where `usesWinograd` picks it: the kernel really is oneDNN's Winograd (on AVX-512;
    /// a CPU without it falls back to direct), and its error against the direct oneDNN and the portable
    /// paths stays within the same 1e-5 relative bound on forward and both gradients.
    func testWinogradIsChosenWhereItWinsAndMatchesDirect() {
        let calls: [(Int, UInt64)] = [(4, 11), (1, 12), (3, 13)]
        // (cin, cout, size): the channel counts of ResNet-20's and CIFAR ResNet-18's 3×3 stride-1 layers
        for (cin, cout, size) in [(32, 32, 16), (64, 64, 8), (128, 128, 4), (32, 64, 5), (64, 32, 3)] {
            let tag = "3x3 s1 \(cin)->\(cout) at \(size)x\(size)"
            XCTAssertTrue(OneDNNConvolution.usesWinograd(ConvGeometry(h: size, w: size, c: cin, kh: 3, kw: 3, stride: 1, pad: 1),
                                                         outChannels: cout), tag)
            ConvBackend.current = .onednn
            let conv = Conv2d("conv", cin, cout, kernel: 3, stride: 1, padding: 1)
            _ = conv.forward(GC.randomTensor([2, size, size, cin], seed: 1, stream: 1), training: true)
            let kernels = conv.backendDescription
            let direct = ConvRuns.run(.onednnDirect, cin: cin, cout: cout, k: 3, s: 1, p: 1, size: size, calls: calls)
            ConvBackend.current = .onednnDirect
            let directConv = Conv2d("conv", cin, cout, kernel: 3, stride: 1, padding: 1)
            _ = directConv.forward(GC.randomTensor([2, size, size, cin], seed: 1, stream: 1), training: true)
            if directConv.backendDescription.contains("avx512") {
                XCTAssertTrue(kernels.contains("wino"), "\(tag): \(kernels)")
            }
            XCTAssertFalse(directConv.backendDescription.contains("wino"), "\(tag): onednn-direct ran \(directConv.backendDescription)")
            let wino = ConvRuns.run(.onednn, cin: cin, cout: cout, k: 3, s: 1, p: 1, size: size, calls: calls)
            let portable = ConvRuns.run(.portable, cin: cin, cout: cout, k: 3, s: 1, p: 1, size: size, calls: calls)
            var worst = (0.0, 0.0, 0.0)
            for (w, (d, q)) in zip(wino, zip(direct, portable)) {
                worst.0 = max(worst.0, ConvRuns.relative(w.y, d.y), ConvRuns.relative(w.y, q.y))
                worst.1 = max(worst.1, ConvRuns.relative(w.dx, d.dx), ConvRuns.relative(w.dx, q.dx))
                worst.2 = max(worst.2, ConvRuns.relative(w.dw, d.dw), ConvRuns.relative(w.dw, q.dw))
            }
            print("winograd \(tag) (\(kernels)): relative error forward \(GC.fmt(worst.0)), input gradient \(GC.fmt(worst.1)), weight gradient \(GC.fmt(worst.2))")
            XCTAssertLessThanOrEqual(max(worst.0, worst.1, worst.2), 1e-5, tag)
            XCTAssertEqual(wino, ConvRuns.run(.onednn, cin: cin, cout: cout, k: 3, s: 1, p: 1, size: size, calls: calls), "\(tag): repeatable")
        }
        XCTAssertFalse(OneDNNConvolution.usesWinograd(ConvGeometry(h: 32, w: 32, c: 16, kh: 3, kw: 3, stride: 1, pad: 1), outChannels: 16))
        XCTAssertFalse(OneDNNConvolution.usesWinograd(ConvGeometry(h: 32, w: 32, c: 64, kh: 3, kw: 3, stride: 2, pad: 1), outChannels: 64))
        XCTAssertFalse(OneDNNConvolution.usesWinograd(ConvGeometry(h: 32, w: 32, c: 64, kh: 1, kw: 1, stride: 1, pad: 0), outChannels: 64))
        XCTAssertFalse(OneDNNConvolution.usesWinograd(ConvGeometry(h: 32, w: 32, c: 40, kh: 3, kw: 3, stride: 1, pad: 1), outChannels: 64))
    }
}
