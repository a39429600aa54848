import Kernels
import Layers

/// PyramidNet (Han et al. 2017) for CIFAR as the RecursiveMix authors define it (models_cifar/pyramidnet.py,
/// `PyramidNet(dataset='cifar…', depth, alpha, num_classes, bottleneck=True)`): a 3×3 stem conv + BN (no
/// ReLU), three stages of pre-activation bottlenecks whose width grows by α/(3n) a block (rounded), the
/// shortcut average-pooled when a stage halves the map and zero-padded to the block's channels, then BN +
/// ReLU before pooling. Depth 9n + 2. Parameter names are the authors' (`layer1.0.bn1`, `bn_final`, `fc`).
public final class PyramidNet: Network, @unchecked Sendable {
    public let depth: Int, alpha: Double

    /// The paper's variants: PyramidNet-200 (α̃ = 240, Table 1) and PyramidNet-164 (α̃ = 270, Tables 2–3);
    /// PyramidNet-11 (n = 1, α 24) is the tiny one of the gradient and golden tests.
    public static let variants: [(name: String, depth: Int, alpha: Double)] =
        [("pyramidnet200", 200, 240), ("pyramidnet164", 164, 270), ("pyramidnet11", 11, 24)]

    public init(depth: Int, alpha: Double, name: String, inChannels: Int, numClasses: Int) {
        precondition((depth - 2) % 9 == 0, "PyramidNet with bottlenecks has depth 9n + 2, not \(depth)")
        self.depth = depth
        self.alpha = alpha
        let n = (depth - 2) / 9
        let addrate = alpha / Double(3 * n)
        var layers: [Layer] = [ConvBN(conv: Conv2d("conv1", inChannels, 16, kernel: 3, padding: 1),
                                      bn: BatchNorm2d("bn1", 16, relu: false))]
        var width = 16.0, inC = 16
        for stage in 0..<3 {
            for i in 0..<n {
                width += addrate
                // Python's round(): half to even, as the authors' int(round(featuremap_dim)).
                let planes = Int(width.rounded(.toNearestOrEven))
                let block = PyramidBottleneck("layer\(stage + 1).\(i)", inC, planes, stride: i == 0 && stage > 0 ? 2 : 1)
                layers.append(block)
                inC = block.outChannels
            }
        }
        layers.append(BatchNorm2d("bn_final", inC, relu: true))
        super.init(name: name, layers: layers, featureChannels: inC, numClasses: numClasses)
    }
}

/// BN-1×1-BN-ReLU-3×3(stride)-BN-ReLU-1×1(×4)-BN, plus the shortcut (2×2 average-pooled when strided),
/// zero-padded to the output's channels, with no ReLU after the add (models_cifar/pyramidnet.py, Bottleneck).
public final class PyramidBottleneck: ResidualBlock {
    static let expansion = 4
    let bn1: BatchNorm2d, conv1: Conv2d, bn2: BatchNorm2d, conv2: Conv2d, bn3: BatchNorm2d, conv3: Conv2d, bn4: BatchNorm2d
    let pool: AvgPool2d?
    public let inChannels: Int, outChannels: Int

    public init(_ name: String, _ inC: Int, _ planes: Int, stride: Int) {
        let outC = planes * PyramidBottleneck.expansion
        precondition(outC >= inC, "\(name): a PyramidNet block does not narrow (\(inC) → \(outC))")
        bn1 = BatchNorm2d(name + ".bn1", inC, relu: false)
        conv1 = Conv2d(name + ".conv1", inC, planes, kernel: 1)
        bn2 = BatchNorm2d(name + ".bn2", planes, relu: true)
        conv2 = Conv2d(name + ".conv2", planes, planes, kernel: 3, stride: stride, padding: 1)
        bn3 = BatchNorm2d(name + ".bn3", planes, relu: true)
        conv3 = Conv2d(name + ".conv3", planes, outC, kernel: 1)
        bn4 = BatchNorm2d(name + ".bn4", outC, relu: false)
        pool = stride == 1 ? nil : AvgPool2d(kernel: stride)
        (inChannels, outChannels) = (inC, outC)
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let h1 = bn2.forward(conv1.forward(bn1.forward(x, training: training), training: training), training: training)
        let h2 = bn3.forward(conv2.forward(h1, training: training), training: training)
        let out = bn4.forward(conv3.forward(h2, training: training), training: training)
        let shortcut = pool?.forward(x, training: training) ?? x
        addLeadingChannels(into: out, from: shortcut)
        return out
    }

    public func backward(_ dy: Tensor) -> Tensor {
        // The shortcut's gradient: dy's first inChannels channels (the zero padding takes none).
        let ds = TensorPool.take(Array(dy.shape.dropLast()) + [inChannels])
        sliceChannels(dy, into: ds)
        let dh2 = conv3.backward(bn4.backward(dy))
        let dh1 = conv2.backward(bn3.backward(dh2))
        let dx = bn1.backward(conv1.backward(bn2.backward(dh1)))
        addInPlace(dx, pool?.backward(ds) ?? ds)
        return dx
    }

    public var children: [Layer] { [bn1, conv1, bn2, conv2, bn3, conv3, bn4] }
}
