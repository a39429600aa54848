import Kernels
import Layers

/// A classifier as training, evaluation, export and the benchmarks see it: a feature extractor whose last
/// feature map RecursiveMix's consistency head reads, and a classifier on top.
///
/// Shapes: input [N, H, W, C] (NHWC, normalised), features [N, h, w, featureChannels], logits
/// [N, numClasses]. Parameter and buffer names are torchvision's state-dict names.
public protocol Model: AnyObject {
    /// The `--model` name.
    var name: String { get }
    var numClasses: Int { get }
    var featureChannels: Int { get }
    /// The final Linear (RecursiveMix's `--rm-share-head` applies it to the RoI features too).
    var classifier: Linear { get }
    var parameters: [Parameter] { get }
    var buffers: [Buffer] { get }
    /// Parameter groups in the order backward finishes them (gradient buckets fill in this order).
    var parameterGroupsInBackwardOrder: [[Parameter]] { get }
    /// Every convolution, in forward order.
    var convolutions: [Conv2d] { get }
    /// FLOPs of one training step (forward and backward) of the last batch, for the benchmarks.
    var lastTrainingStepFlops: Double { get }
    /// Sets the initial weights from `seed` (torchvision's initialisation unless the network says otherwise).
    func initialize(seed: UInt64)
    func forwardFeatures(_ x: Tensor, training: Bool) -> Tensor
    func classify(_ features: Tensor, training: Bool) -> Tensor
    /// Backward from the logits' gradient, `featureGradient` (when given) added at the feature map.
    /// Parameter gradients are accumulated; `gradientsReady` gets each group as soon as it is final.
    func backward(logitsGradient: Tensor, featureGradient: Tensor?, gradientsReady: (([Parameter]) -> Void)?)
}

public extension Model {
    func forward(_ x: Tensor, training: Bool) -> Tensor { classify(forwardFeatures(x, training: training), training: training) }
    var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }
}

/// The networks `--model` can name: the one list a new network adds itself to.
public enum Networks {
    /// Builds a network for images of `inChannels` channels and `numClasses` classes.
    public typealias Builder = @Sendable (_ inChannels: Int, _ numClasses: Int) -> Network

    /// Name → builder: the families' variants, then the single networks.
    public static let all: [(name: String, make: Builder)] =
        ResNet.Variant.allCases.map { v in (v.rawValue, { ResNet(v, inChannels: $0, numClasses: $1) }) } + families + single
    private static let families: [(name: String, make: Builder)] = PyramidNet.variants.map { v in
        (v.name, { PyramidNet(depth: v.depth, alpha: v.alpha, name: v.name, inChannels: $0, numClasses: $1) })
    } + DenseNet.variants.map { v in
        (v.name, { DenseNet(blocks: v.blocks, growthRate: v.growthRate, name: v.name, inChannels: $0, numClasses: $1) })
    }
    /// A new network of one variant adds its line here: `("name", { MyNet(inChannels: $0, numClasses: $1) }),`.
    private static let single: [(name: String, make: Builder)] = [
    ]

    public static var names: [String] { all.map(\.name) }

    /// The network `name` for images of `inChannels` channels and `numClasses` classes; nil for an unknown name.
    public static func make(_ name: String, inChannels: Int, numClasses: Int) -> Network? {
        all.first { $0.name == name }?.make(inChannels, numClasses)
    }
}

/// A network whose feature extractor is a list of layers applied in turn, followed by global average
/// pooling and a Linear classifier: every network of the paper's tables has this shape. Backward is the
/// list reversed, and each layer's parameters form one gradient group, so the order in which gradients
/// are ready follows from the forward graph. A subclass builds `layers` and nothing else.
public class Network: Model, @unchecked Sendable {
    public let name: String
    public let numClasses: Int
    public let featureChannels: Int
    public let layers: [Layer]
    public let classifier: Linear
    let pool = GlobalAvgPool()
    public private(set) var features: Tensor?
    /// Each layer's parameters, collected once (a block's `parameters` builds a new array on every call).
    private lazy var layerParameters: [[Parameter]] = layers.map(\.parameters)

    /// `layers` map the input to a feature map of `featureChannels` channels; the classifier is named `fc`.
    public init(name: String, layers: [Layer], featureChannels: Int, numClasses: Int) {
        self.name = name
        self.layers = layers
        self.featureChannels = featureChannels
        self.numClasses = numClasses
        classifier = Linear("fc", featureChannels, numClasses)
    }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) + classifier.parameters }
    public var buffers: [Buffer] { layers.flatMap(\.buffers) }
    public var convolutions: [Conv2d] { layers.flatMap(\.convolutions) }
    public var parameterGroupsInBackwardOrder: [[Parameter]] {
        [classifier.parameters] + layerParameters.reversed().filter { !$0.isEmpty }
    }

    /// How this network's convolutions start (torchvision's rule); a subclass whose reference definition
    /// initialises otherwise overrides this.
    var convolutionInit: ConvolutionInit { .kaimingNormalFanOut }

    /// Each layer initialises itself in turn, then the classifier, from one stream: convolutions by
    /// `convolutionInit`, BatchNorm γ = 1, β = 0 with running means 0 and variances 1, Linear layers as
    /// PyTorch's default (see each layer's `initialize`). The draws follow `parameters` order.
    public func initialize(seed: UInt64) {
        var rng = RandomStream(seed: seed, stream: RandomStreams.weights)
        for layer in layers { layer.initialize(convolutions: convolutionInit, rng: &rng) }
        classifier.initialize(convolutions: convolutionInit, rng: &rng)
    }

    public func forwardFeatures(_ x: Tensor, training: Bool) -> Tensor {
        var h = x
        for layer in layers { h = layer.forward(h, training: training) }
        features = h
        return h
    }

    public func classify(_ features: Tensor, training: Bool) -> Tensor {
        classifier.forward(pool.forward(features, training: training), training: training)
    }

    public func backward(logitsGradient: Tensor, featureGradient: Tensor? = nil,
                         gradientsReady: (([Parameter]) -> Void)? = nil) {
        var g = pool.backward(classifier.backward(logitsGradient))
        gradientsReady?(classifier.parameters)
        // The pooling's input gradient is ours alone (a pooled buffer): the head's gradient adds into it.
        if let featureGradient { addInPlace(g, featureGradient) }
        for (i, layer) in layers.enumerated().reversed() {
            // The input of the first layer is the data: no gradient needed.
            if i == 0 { layer.backwardParameters(g) } else { g = layer.backward(g) }
            if !layerParameters[i].isEmpty { gradientsReady?(layerParameters[i]) }
        }
    }

    /// FLOPs of one training step (forward and backward) of the last batch: convolutions and the
    /// classifier, the GEMM work that dominates.
    public var lastTrainingStepFlops: Double {
        var total = 0.0
        for conv in convolutions { total += conv.lastForwardFlops + conv.lastBackwardFlops }
        return total + 3 * 2 * Double(classifier.inFeatures * classifier.outFeatures) * Double(features?.n ?? 0)
    }
}
