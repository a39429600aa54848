import Kernels
import Layers

/// DenseNet-BC (Huang et al. 2017) for CIFAR as the RecursiveMix authors define it (models_cifar/densenet.py,
/// `densenet121()`, `densenet161()`): a 3×3 stem conv of 2k channels (no BN: the first dense layer's BN reads
/// it), dense blocks whose layers each append k (the growth rate) channels to their input, a transition
/// (BN, 1×1 conv to ⌊0.5·C⌋ channels, 2×2 average pooling) between blocks, then BN + ReLU before pooling.
/// Parameter names are the authors' (`features.dense_block_layer_0.bottle_neck_layer_0.bottle_neck.0`,
/// `features.transition_layer_0.down_sample.1`, `features.dense_block3…` for the last block, `features.bn`)
/// except the classifier, `fc` as in every rmtrain network (the authors' `linear`; their `linear_roi` is our
/// `fc_roi`). Weights start as PyTorch's defaults, as the authors' file sets none.
public final class DenseNet: Network, @unchecked Sendable {
    public let blocks: [Int], growthRate: Int

    /// Table 3's DenseNet-121 (k = 32) and DenseNet-161 (k = 48); DenseNet-13 (one layer a block, k = 8) is
    /// the tiny one of the gradient and golden tests.
    public static let variants: [(name: String, blocks: [Int], growthRate: Int)] =
        [("densenet121", [6, 12, 24, 16], 32), ("densenet161", [6, 12, 36, 24], 48), ("densenet13", [1, 1, 1, 1], 8)]

    /// The transition's compression θ (the authors' `reduction=0.5`).
    public static let compression = 0.5

    public init(blocks: [Int], growthRate k: Int, name: String, inChannels: Int, numClasses: Int) {
        self.blocks = blocks
        self.growthRate = k
        var c = 2 * k
        var layers: [Layer] = [Conv2d("conv1", inChannels, c, kernel: 3, padding: 1)]
        for (i, n) in blocks.enumerated() {
            let last = i == blocks.count - 1
            // The authors' add_module names: "dense_block_layer_{i}", but "dense_block{i}" for the last block.
            let block = last ? "features.dense_block\(i)" : "features.dense_block_layer_\(i)"
            for j in 0..<n {
                layers.append(DenseLayer("\(block).bottle_neck_layer_\(j).bottle_neck", c, growthRate: k))
                c += k
            }
            if !last {
                let out = Int(DenseNet.compression * Double(c))  // the authors' int(): floor
                layers.append(Transition("features.transition_layer_\(i).down_sample", c, out))
                c = out
            }
        }
        layers.append(BatchNorm2d("features.bn", c, relu: true))
        super.init(name: name, layers: layers, featureChannels: c, numClasses: numClasses)
    }

    override var convolutionInit: ConvolutionInit { .pytorchDefault }
}

/// BN-ReLU-1×1 conv (4k)-BN-ReLU-3×3 conv (k), its output concatenated after the input's channels:
/// [N, H, W, C] → [N, H, W, C + k] (models_cifar/densenet.py, Bottleneck; names `.0` `.2` `.3` `.5` are the
/// positions in its nn.Sequential). The concatenation is a copy: the input's C channels are read again by
/// every later layer of the block, in a contiguous tensor that BN and the convolutions can take.
public final class DenseLayer: Layer {
    let bn1: BatchNorm2d, conv1: Conv2d, bn2: BatchNorm2d, conv2: Conv2d
    public let inChannels: Int, growthRate: Int
    private var output: Tensor?

    public init(_ name: String, _ inC: Int, growthRate k: Int) {
        bn1 = BatchNorm2d(name + ".0", inC, relu: true)
        conv1 = Conv2d(name + ".2", inC, 4 * k, kernel: 1)
        bn2 = BatchNorm2d(name + ".3", 4 * k, relu: true)
        conv2 = Conv2d(name + ".5", 4 * k, k, kernel: 3, padding: 1)
        (inChannels, growthRate) = (inC, k)
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let h1 = bn2.forward(conv1.forward(bn1.forward(x, training: training), training: training), training: training)
        let h = conv2.forward(h1, training: training)
        let y = ensure(&output, Array(x.shape.dropLast()) + [inChannels + growthRate])
        concatChannels(x, h, into: y)
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let dh = TensorPool.take(Array(dy.shape.dropLast()) + [growthRate])
        sliceChannels(dy, from: inChannels, into: dh)
        let dx = bn1.backward(conv1.backward(bn2.backward(conv2.backward(dh))))
        addLeadingChannels(into: dx, from: dy)  // the input's own channels pass straight through
        return dx
    }

    public var children: [Layer] { [bn1, conv1, bn2, conv2] }
}

/// BN (no ReLU)-1×1 conv-2×2 average pooling (floor mode), between dense blocks: [N, H, W, C] →
/// [N, ⌊H/2⌋, ⌊W/2⌋, C'] (models_cifar/densenet.py, Transition; `.0` BN, `.1` conv, in the authors' order).
public final class Transition: Layer {
    let bn: BatchNorm2d, conv: Conv2d
    let pool = AvgPool2d(kernel: 2, ceilMode: false)

    public init(_ name: String, _ inC: Int, _ outC: Int) {
        bn = BatchNorm2d(name + ".0", inC, relu: false)
        conv = Conv2d(name + ".1", inC, outC, kernel: 1)
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        pool.forward(conv.forward(bn.forward(x, training: training), training: training), training: training)
    }
    public func backward(_ dy: Tensor) -> Tensor { bn.backward(conv.backward(pool.backward(dy))) }
    public var children: [Layer] { [bn, conv] }
}
