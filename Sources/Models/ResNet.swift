import Foundation
import Kernels
import Layers

/// The ResNets of the paper's experiments. Every variant exposes the feature map before global pooling
/// (`features`), which the RecursiveMix consistency head pools with RoIAlign.
public final class ResNet: @unchecked Sendable {
    public enum Variant: String, CaseIterable, Sendable {
        case resnet8, resnet20, resnet56                // CIFAR, 3 stages of 16/32/64 channels (n = 1, 3, 9)
        case cifarResnet18 = "cifar-resnet18", cifarResnet34 = "cifar-resnet34"   // 3×3 stem, no max-pool
        case resnet18, resnet50                          // ImageNet, torchvision v1.5 layout

        var isImageNet: Bool { self == .resnet18 || self == .resnet50 }
    }

    public let variant: Variant
    public let inChannels: Int, numClasses: Int
    public let featureChannels: Int
    let stem: Conv2d
    let stemBN: BatchNorm2d
    let maxPool: MaxPool2d?
    let blocks: [ResidualBlock]
    let pool = GlobalAvgPool()
    public let fc: Linear
    private var featureGrad: Tensor?
    public private(set) var features: Tensor?

    public init(_ variant: Variant, inChannels: Int, numClasses: Int) {
        self.variant = variant
        self.inChannels = inChannels
        self.numClasses = numClasses
        var blocks: [ResidualBlock] = []
        func stages(_ widths: [Int], _ counts: [Int], strides: [Int], start: Int,
                    _ make: (String, Int, Int, Int) -> ResidualBlock) -> Int {
            var c = start
            for (s, (width, count)) in zip(widths, counts).enumerated() {
                for i in 0..<count {
                    let block = make("layer\(s + 1).\(i)", c, width, i == 0 ? strides[s] : 1)
                    blocks.append(block)
                    c = block.outChannels
                }
            }
            return c
        }
        let basic: (String, Int, Int, Int) -> ResidualBlock = { BasicBlock($0, $1, $2, stride: $3) }
        switch variant {
        case .resnet8, .resnet20, .resnet56:
            // depth 6n + 2 (He et al. 2016, §4.2); ResNet-8 is the tiny one of golden traces and smoke tests.
            let n = [.resnet8: 1, .resnet20: 3, .resnet56: 9][variant]!
            stem = Conv2d("conv1", inChannels, 16, kernel: 3, padding: 1)
            stemBN = BatchNorm2d("bn1", 16, relu: true)
            maxPool = nil
            featureChannels = stages([16, 32, 64], [n, n, n], strides: [1, 2, 2], start: 16, basic)
        case .cifarResnet18, .cifarResnet34:
            let counts = variant == .cifarResnet18 ? [2, 2, 2, 2] : [3, 4, 6, 3]
            stem = Conv2d("conv1", inChannels, 64, kernel: 3, padding: 1)
            stemBN = BatchNorm2d("bn1", 64, relu: true)
            maxPool = nil
            featureChannels = stages([64, 128, 256, 512], counts, strides: [1, 2, 2, 2], start: 64, basic)
        case .resnet18, .resnet50:
            stem = Conv2d("conv1", inChannels, 64, kernel: 7, stride: 2, padding: 3)
            stemBN = BatchNorm2d("bn1", 64, relu: true)
            maxPool = MaxPool2d(kernel: 3, stride: 2, padding: 1)
            if variant == .resnet18 {
                featureChannels = stages([64, 128, 256, 512], [2, 2, 2, 2], strides: [1, 2, 2, 2], start: 64, basic)
            } else {
                featureChannels = stages([64, 128, 256, 512], [3, 4, 6, 3], strides: [1, 2, 2, 2], start: 64) {
                    Bottleneck($0, $1, $2, stride: $3)
                }
            }
        }
        self.blocks = blocks
        stem.needsInputGradient = false
        fc = Linear("fc", featureChannels, numClasses)
    }

    public var parameters: [Parameter] {
        stem.parameters + stemBN.parameters + blocks.flatMap { $0.parameters } + fc.parameters
    }
    public var buffers: [Buffer] { stemBN.buffers + blocks.flatMap { $0.buffers } }

    /// torchvision's initialisation: conv weights ~ N(0, 2/fan_out) (kaiming_normal_, mode fan_out, relu),
    /// BN γ = 1, β = 0, Linear weight and bias ~ U(±1/√fan_in) (PyTorch's Linear default).
    public func initialize(seed: UInt64) {
        var rng = RandomStream(seed: seed, stream: 0x1417)
        for p in parameters {
            switch p.kind {
            case .weight where p.value.shape.count == 4:
                let fanOut = p.value.shape[0] * p.value.shape[1] * p.value.shape[2]
                let std = (2.0 / Double(fanOut)).squareRoot()
                for i in 0..<p.value.count { p.value[i] = Float(rng.normal() * std) }
            case .weight, .bias:
                let fanIn = p.kind == .weight ? p.value.shape[1] : featureChannels
                let bound = 1 / Double(fanIn).squareRoot()
                for i in 0..<p.value.count { p.value[i] = Float(rng.uniform(-bound, bound)) }
            case .normScale: p.value.fill(1)
            case .normShift: p.value.fill(0)
            }
        }
        for b in buffers { b.value.fill(b.name.hasSuffix("running_var") ? 1 : 0) }
    }

    /// Input NHWC → feature map before global pooling.
    public func forwardFeatures(_ x: Tensor, training: Bool) -> Tensor {
        var h = stemBN.forward(stem.forward(x, training: training), training: training)
        if let maxPool { h = maxPool.forward(h, training: training) }
        for b in blocks { h = b.forward(h, training: training) }
        features = h
        return h
    }

    /// Input NHWC → logits [N, classes].
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        classify(forwardFeatures(x, training: training), training: training)
    }

    /// Feature map → logits: global average pooling and the classifier `fc`.
    public func classify(_ features: Tensor, training: Bool) -> Tensor {
        fc.forward(pool.forward(features, training: training), training: training)
    }

    /// Backward from the logits' gradient; `featureGradient`, when given, is added at the feature map
    /// (the consistency head's gradient). Parameter gradients are accumulated.
    ///
    /// `gradientsReady`, when set, is called with each group of parameters as soon as backward has
    /// finished their gradients (classifier first, stem last), so that their all-reduce can start while
    /// the rest of backward runs.
    public func backward(logitsGradient: Tensor, featureGradient: Tensor? = nil,
                         gradientsReady: (([Parameter]) -> Void)? = nil) {
        var g = pool.backward(fc.backward(logitsGradient)!)!
        gradientsReady?(fc.parameters)
        if let featureGradient {
            let sum = ensure(&featureGrad, g.shape)
            let a = g.data, b = featureGradient.data, s = sum.data
            for i in 0..<g.count { s[i] = a[i] + b[i] }
            g = sum
        }
        for b in blocks.reversed() {
            g = b.backward(g)
            gradientsReady?(b.parameters)
        }
        if let maxPool { g = maxPool.backward(g)! }
        _ = stem.backward(stemBN.backward(g)!)
        gradientsReady?(stem.parameters + stemBN.parameters)
    }

    /// Parameter groups in the order backward finishes them (the order gradient buckets are filled).
    public var parameterGroupsInBackwardOrder: [[Parameter]] {
        [fc.parameters] + blocks.reversed().map { $0.parameters } + [stem.parameters + stemBN.parameters]
    }

    /// FLOPs of one training step (forward, weight gradient, input gradient) of the last forward's batch:
    /// convolutions and the classifier, the GEMM work that dominates.
    public var lastTrainingStepFlops: Double {
        var total = 0.0
        for conv in convolutions { total += conv.lastForwardFlops * (conv.needsInputGradient ? 3 : 2) }
        return total + 3 * 2 * Double(fc.inFeatures * fc.outFeatures) * Double(features?.n ?? 0)
    }

    var convolutions: [Conv2d] { [stem] + blocks.flatMap { $0.convolutions } }

    public func zeroGradients() { for p in parameters { p.grad.zero() } }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }
}
