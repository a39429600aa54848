import Foundation
import XCTest
import Kernels
import Layers
import Models

/// Our layers against PyTorch. The files in Golden/ are written by Golden/make_golden.py (run by hand);
/// they hold inputs, weights, outputs, the upstream gradient fed to backward, and the resulting gradients,
/// all float32 in PyTorch's layout (NCHW activations, OIHW conv weights).
///
/// Tolerance, per tensor: max_i |ours_i − torch_i| / max(max_i |torch_i|, 1e-6) ≤ 1e-4.
final class GoldenTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
    static let tolerance = 1e-4

    typealias File = [String: SafeTensors.Entry]

    func load(_ name: String) throws -> File {
        try SafeTensors.read(Self.folder.appendingPathComponent(name).path)
    }

    /// A golden tensor as ours: 4-D NCHW / OIHW become NHWC / OHWI (the same permutation); others are copied.
    static func tensor(_ e: SafeTensors.Entry) -> Tensor {
        guard e.shape.count == 4 else { return Tensor(shape: e.shape, values: e.values) }
        let (a, b, c, d) = (e.shape[0], e.shape[1], e.shape[2], e.shape[3])
        let t = Tensor(shape: [a, c, d, b])
        for i in 0..<a { for j in 0..<b { for k in 0..<c { for l in 0..<d {
            t[((i * c + k) * d + l) * b + j] = e.values[((i * b + j) * c + k) * d + l]
        } } } }
        return t
    }

    func entry(_ f: File, _ key: String, file: StaticString = #filePath, line: UInt = #line) throws -> SafeTensors.Entry {
        try XCTUnwrap(f[key], "golden file has no tensor \(key)", file: file, line: line)
    }

    func tensor(_ f: File, _ key: String, file: StaticString = #filePath, line: UInt = #line) throws -> Tensor {
        Self.tensor(try entry(f, key, file: file, line: line))
    }

    /// Copies a golden tensor (converted) into one of ours, checking the shape.
    func load(_ dst: Tensor, from f: File, _ key: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let src = try tensor(f, key, file: file, line: line)
        XCTAssertEqual(dst.shape, src.shape, "\(key) shape", file: file, line: line)
        dst.copy(from: src)
    }

    /// Per-tensor relative error against the golden tensor (converted to our layout); asserts the tolerance.
    @discardableResult
    /// max|ours − torch| / max(max|torch|, floor).
    func compare(_ label: String, _ ours: Tensor, _ f: File, _ key: String, tolerance: Double = GoldenTests.tolerance,
                 floor: Double = 1e-6, file: StaticString = #filePath, line: UInt = #line) throws -> Double {
        let ref = try tensor(f, key, file: file, line: line)
        XCTAssertEqual(ours.shape, ref.shape, "\(label): shape", file: file, line: line)
        guard ours.count == ref.count else { return .infinity }
        var diff = 0.0, scale = 0.0
        for i in 0..<ref.count {
            diff = max(diff, abs(Double(ours[i]) - Double(ref[i])))
            scale = max(scale, abs(Double(ref[i])))
        }
        let rel = diff / max(scale, floor)
        print("golden \(label): max|ours - torch| = \(GradientCheck.fmt(diff)), max|torch| = \(GradientCheck.fmt(scale)), "
              + "relative \(GradientCheck.fmt(rel))")
        XCTAssertLessThanOrEqual(rel, tolerance, "\(label): relative error vs PyTorch", file: file, line: line)
        return rel
    }

    // MARK: Conv2d

    func checkConv(_ name: String, stride: Int, pad: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let f = try load(name)
        let w = try entry(f, "weight")                       // OIHW
        let hasBias = f["bias"] != nil
        let conv = Conv2d("conv", w.shape[1], w.shape[0], kernel: w.shape[2], stride: stride, padding: pad, bias: hasBias)
        try load(conv.weight.value, from: f, "weight")
        if let b = conv.bias { try load(b.value, from: f, "bias") }
        let x = try tensor(f, "x")
        let y = conv.forward(x, training: true)
        try compare("\(name) y", y, f, "y", file: file, line: line)
        for p in conv.parameters { p.grad.zero() }
        let dx = conv.backward(try tensor(f, "dy"))
        try compare("\(name) dx", dx, f, "dx", file: file, line: line)
        try compare("\(name) weight.grad", conv.weight.grad, f, "weight.grad", file: file, line: line)
        if let b = conv.bias { try compare("\(name) bias.grad", b.grad, f, "bias.grad", file: file, line: line) }
    }

    func testConv3x3Stride1Pad1() throws { try checkConv("conv3x3_s1_p1.safetensors", stride: 1, pad: 1) }
    func testConv3x3Stride2Pad1() throws { try checkConv("conv3x3_s2_p1.safetensors", stride: 2, pad: 1) }
    func testConv1x1Stride2() throws { try checkConv("conv1x1_s2.safetensors", stride: 2, pad: 0) }

    // MARK: BatchNorm2d

    func checkBatchNorm(_ name: String, training: Bool) throws {
        let f = try load(name)
        let c = try entry(f, "weight").shape[0]
        let residual = f["residual"] != nil
        let bn = BatchNorm2d("bn", c, relu: residual, momentum: 0.1)
        try load(bn.gamma.value, from: f, "weight")
        try load(bn.beta.value, from: f, "bias")
        try load(bn.runningMean.value, from: f, "running_mean")
        try load(bn.runningVar.value, from: f, "running_var")
        let r = residual ? try tensor(f, "residual") : nil
        let y = bn.forward(try tensor(f, "x"), residual: r, training: training)
        try compare("\(name) y", y, f, "y")
        if training {
            try compare("\(name) running_mean", bn.runningMean.value, f, "running_mean.after")
            try compare("\(name) running_var", bn.runningVar.value, f, "running_var.after")
        } else {
            try compare("\(name) running_mean unchanged", bn.runningMean.value, f, "running_mean", tolerance: 0)
            try compare("\(name) running_var unchanged", bn.runningVar.value, f, "running_var", tolerance: 0)
        }
        for p in bn.parameters { p.grad.zero() }
        let dx = bn.backward(try tensor(f, "dy"))
        try compare("\(name) dx", dx, f, "dx")
        try compare("\(name) weight.grad", bn.gamma.grad, f, "weight.grad")
        try compare("\(name) bias.grad", bn.beta.grad, f, "bias.grad")
        if residual { try compare("\(name) residual.grad", bn.residualGradient, f, "residual.grad") }
    }

    func testBatchNormTraining() throws { try checkBatchNorm("bn_train.safetensors", training: true) }
    func testBatchNormTrainingResidualReLU() throws { try checkBatchNorm("bn_train_relu_residual.safetensors", training: true) }
    func testBatchNormEval() throws { try checkBatchNorm("bn_eval.safetensors", training: false) }

    // MARK: Linear, MaxPool2d, SoftTargetCrossEntropy

    func testLinear() throws {
        let f = try load("linear.safetensors")
        let w = try entry(f, "weight")
        let lin = Linear("fc", w.shape[1], w.shape[0])
        try load(lin.weight.value, from: f, "weight")
        try load(lin.bias.value, from: f, "bias")
        try compare("linear y", lin.forward(try tensor(f, "x"), training: true), f, "y")
        for p in lin.parameters { p.grad.zero() }
        try compare("linear dx", lin.backward(try tensor(f, "dy")), f, "dx")
        try compare("linear weight.grad", lin.weight.grad, f, "weight.grad")
        try compare("linear bias.grad", lin.bias.grad, f, "bias.grad")
    }

    func testMaxPool3x3Stride2Pad1() throws {
        let f = try load("maxpool3_2_1.safetensors")
        let pool = MaxPool2d(kernel: 3, stride: 2, padding: 1)
        try compare("maxpool y", pool.forward(try tensor(f, "x"), training: true), f, "y")
        try compare("maxpool dx", pool.backward(try tensor(f, "dy")), f, "dx")
    }

    func testSoftTargetCrossEntropy() throws {
        let f = try load("soft_target_ce.safetensors")
        let z = try tensor(f, "logits")
        for suffix in ["", ".unnormalized"] {
            let ce = SoftTargetCrossEntropy()
            let loss = ce.forward(logits: z, targets: try tensor(f, "targets" + suffix))
            try compare("soft CE\(suffix) loss", Tensor(shape: [1], values: [Float(loss)]), f, "loss" + suffix)
            try compare("soft CE\(suffix) logits.grad", ce.backward(), f, "logits.grad" + suffix)
        }
    }

    // MARK: Whole networks

    /// One training step's forward and backward of a whole network (batch 4, 3×16×16, 10 classes): logits,
    /// loss, every parameter's gradient, and the BN running statistics after the forward. Also checks that
    /// our parameter and buffer names are exactly PyTorch's (torchvision's; the authors' for PyramidNet).
    func testResNet20() throws { try checkNetwork("resnet20.safetensors", ResNet(.resnet20, inChannels: 3, numClasses: 10)) }

    /// PyramidNet-11: pre-activation bottlenecks, average-pooled and zero-padded shortcuts, BN + ReLU at the end.
    func testPyramidNet11() throws {
        try checkNetwork("pyramidnet11.safetensors", try XCTUnwrap(Networks.make("pyramidnet11", inChannels: 3, numClasses: 10)))
    }

    /// DenseNet-13 (one dense layer a block, k = 8): channel concatenation, BN-conv-average-pool transitions
    /// that halve 16 → 8 → 4 → 2, BN + ReLU at the end, the authors' parameter names.
    func testDenseNet13() throws {
        try checkNetwork("densenet13.safetensors", try XCTUnwrap(Networks.make("densenet13", inChannels: 3, numClasses: 10)))
    }

    func checkNetwork(_ file: String, _ model: Network) throws {
        let f = try load(file)
        let tag = model.name
        let ours = Set(model.parameters.map(\.name))
        let theirs = Set(f.keys.filter { $0.hasPrefix("param/") }.map { String($0.dropFirst(6)) })
        XCTAssertEqual(ours, theirs, "parameter names differ from PyTorch's")
        XCTAssertEqual(ours.count, model.parameters.count, "duplicate parameter names")
        let ourBuffers = Set(model.buffers.map(\.name))
        let theirBuffers = Set(f.keys.filter { $0.hasPrefix("buffer/") }.map { String($0.dropFirst(7)) })
        XCTAssertEqual(ourBuffers, theirBuffers, "buffer names differ from PyTorch's")

        for p in model.parameters { try load(p.value, from: f, "param/" + p.name) }
        // Buffers start at PyTorch's defaults (mean 0, var 1), which ours have too.
        for b in model.buffers {
            let fill: Float = b.name.hasSuffix("running_var") ? 1 : 0
            XCTAssertTrue(b.value.array.allSatisfy { $0 == fill }, "\(b.name) does not start at \(fill)")
        }
        let x = try tensor(f, "input")
        let logits = model.forward(x, training: true)
        try compare("\(tag) logits", logits, f, "logits")
        let ce = SoftTargetCrossEntropy()
        let loss = ce.forward(logits: logits, targets: try tensor(f, "target"))
        try compare("\(tag) loss", Tensor(shape: [1], values: [Float(loss)]), f, "loss")
        for p in model.parameters { p.grad.zero() }
        model.backward(logitsGradient: ce.backward())
        // A gradient that is zero in exact arithmetic (the β of a BN without ReLU whose output reaches the loss
        // only through later training-mode BNs, which remove any constant shift: PyramidNet's bn1, bnK.bn1 and
        // bn4, ~1e-8 in PyTorch's float32) is rounding noise in both: compare it at a tenth of the
        // network's largest gradient.
        var largest = 0.0
        for p in model.parameters { largest = max(largest, try tensor(f, "grad/" + p.name).array.map { abs(Double($0)) }.max() ?? 0) }
        var worst = (0.0, "")
        for p in model.parameters {
            let e = try compare("\(tag) grad \(p.name)", p.grad, f, "grad/" + p.name, floor: 0.1 * largest)
            if e > worst.0 { worst = (e, p.name) }
        }
        for b in model.buffers {
            let e = try compare("\(tag) \(b.name)", b.value, f, "buffer/" + b.name)
            if e > worst.0 { worst = (e, b.name) }
        }
        print("golden \(tag): worst relative error \(GradientCheck.fmt(worst.0)) (\(worst.1))")
    }
}
