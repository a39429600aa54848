import Kernels

/// A trainable tensor with its gradient. `name` follows torchvision's state-dict names
/// (`layer1.0.conv1.weight`) so checkpoints and exports line up with PyTorch tooling.
public final class Parameter: @unchecked Sendable {
    public enum Kind: Sendable { case weight, bias, normScale, normShift }
    public let name: String
    public let kind: Kind
    public let value: Tensor
    public let grad: Tensor

    public init(_ name: String, shape: [Int], kind: Kind) {
        self.name = name
        self.kind = kind
        value = Tensor(shape: shape)
        grad = Tensor(shape: shape)
    }

    /// Batch-norm affine parameters and biases, which `--no-bn-decay` exempts from weight decay.
    public var isNormOrBias: Bool { kind != .weight }
}

/// A non-trainable state tensor (BN running statistics) that is saved, averaged across ranks and exported.
public final class Buffer: @unchecked Sendable {
    public let name: String
    public let value: Tensor
    public init(_ name: String, shape: [Int], fill: Float) {
        self.name = name
        value = Tensor(shape: shape)
        value.fill(fill)
    }
}

/// The one contract of every differentiable layer (Caffe's): `forward` caches what backward needs;
/// `backward` takes the gradient of the output, adds the parameter gradients into `Parameter.grad`, and
/// returns the gradient of the input. The caller says when the input needs no gradient (a network's first
/// layer) by calling `backwardParameters` instead, which skips that work. Composite layers (a residual
/// block, conv + BN) are layers too, so a network is a list of them and its backward is that list reversed.
///
/// Two parts have contracts of their own, because their inputs are not one tensor: BatchNorm2d's fused
/// residual add (`forward(_:residual:training:)`, then `residualGradient`), and the losses and RoIAlign
/// (targets and boxes are inputs without gradients).
///
/// A composite lists its sublayers once, in `children`; its parameters, buffers, convolutions and
/// initialisation follow from that list, in its order.
public protocol Layer: AnyObject {
    /// The sublayers that hold parameters or buffers, in the order of their parameters (PyTorch's
    /// `nn.Module.children()`); empty for a layer that holds its own.
    var children: [Layer] { get }
    var parameters: [Parameter] { get }
    var buffers: [Buffer] { get }
    /// The convolutions inside, in forward order (FLOP counts, per-shape benchmarks).
    var convolutions: [Conv2d] { get }
    /// Sets the parameters and buffers to their initial values, drawing from `rng` parameter by parameter
    /// in `parameters` order; `convolutions` is the rule the network's definition gives its convolutions.
    /// A composite initialises its children in turn; a layer holding parameters implements its own.
    func initialize(convolutions: ConvolutionInit, rng: inout RandomStream)
    func forward(_ x: Tensor, training: Bool) -> Tensor
    func backward(_ dy: Tensor) -> Tensor
    func backwardParameters(_ dy: Tensor)
}

extension Layer {
    public var children: [Layer] { [] }
    public var parameters: [Parameter] { children.flatMap(\.parameters) }
    public var buffers: [Buffer] { children.flatMap(\.buffers) }
    public var convolutions: [Conv2d] { children.flatMap(\.convolutions) }
    public func initialize(convolutions: ConvolutionInit, rng: inout RandomStream) {
        precondition(!children.isEmpty || (parameters.isEmpty && buffers.isEmpty),
                     "\(type(of: self)) holds parameters but does not initialise them")
        for child in children { child.initialize(convolutions: convolutions, rng: &rng) }
    }
    /// Layers whose input gradient costs little compute it anyway.
    public func backwardParameters(_ dy: Tensor) { _ = backward(dy) }
}

/// How a network's convolution weights start: each network's reference definition chooses.
public enum ConvolutionInit: Sendable {
    /// N(0, 2/fan_out), bias 0: torchvision's ResNets (`kaiming_normal_(mode="fan_out",
    /// nonlinearity="relu")`, torchvision/models/resnet.py), the authors' PyramidNet.
    case kaimingNormalFanOut
    /// U(±1/√fan_in) for weight and bias: PyTorch's nn.Conv2d default (`kaiming_uniform_(a=√5)`,
    /// torch/nn/modules/conv.py `reset_parameters`), for a definition that sets none.
    case pytorchDefault
}

/// Every trainable parameter's value and gradient as slices of two flat buffers, in the order given (the
/// order backward finishes them, so that a gradient bucket is one contiguous range). Zeroing the
/// gradients, checking them for NaN and infinity, and the bucketed all-reduce each sweep one contiguous
/// buffer; each `Parameter` keeps its tensors, now views into these.
public final class FlatParameters: @unchecked Sendable {
    public let parameters: [Parameter]
    public let values: Tensor
    public let grads: Tensor
    /// Float offset of each parameter in both buffers, by identity.
    private let offsets: [ObjectIdentifier: Int]

    /// `parameters` may repeat one (a shared head): it is laid out once, at its first place.
    public init(_ parameters: [Parameter]) {
        var unique: [Parameter] = [], offsets: [ObjectIdentifier: Int] = [:], total = 0
        for p in parameters where offsets[ObjectIdentifier(p)] == nil {
            offsets[ObjectIdentifier(p)] = total
            unique.append(p)
            total += p.value.count
        }
        (self.parameters, self.offsets) = (unique, offsets)
        values = Tensor(shape: [total])
        grads = Tensor(shape: [total])
        for p in unique {
            let o = offsets[ObjectIdentifier(p)]!
            p.value.rebind(into: values, offset: o)
            p.grad.rebind(into: grads, offset: o)
        }
    }

    /// Where `p` starts in `values` and `grads`; nil for a parameter laid out elsewhere.
    public func offset(of p: Parameter) -> Int? { offsets[ObjectIdentifier(p)] }
}
