import Kernels
import Layers

/// A residual block: a layer whose output has `outChannels` channels.
public protocol ResidualBlock: Layer {
    var outChannels: Int { get }
}

/// A convolution followed by BatchNorm (and the ReLU fused into it when `relu`): a ResNet's stem
/// (`conv1`/`bn1`) and the projection shortcut used when a block changes shape (`downsample.0`/`.1`,
/// 1×1 with stride, no ReLU), under torchvision's names.
public final class ConvBN: Layer {
    public let conv: Conv2d, bn: BatchNorm2d
    public init(conv: Conv2d, bn: BatchNorm2d) { (self.conv, self.bn) = (conv, bn) }
    /// `downsample.0` / `downsample.1` of a block named `name`.
    public convenience init(downsample name: String, _ inC: Int, _ outC: Int, stride: Int) {
        self.init(conv: Conv2d(name + ".0", inC, outC, kernel: 1, stride: stride), bn: BatchNorm2d(name + ".1", outC, relu: false))
    }
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        bn.forward(conv.forward(x, training: training), training: training)
    }
    public func backward(_ dy: Tensor) -> Tensor { conv.backward(bn.backward(dy)) }
    public func backwardParameters(_ dy: Tensor) { conv.backwardParameters(bn.backward(dy)) }
    public var children: [Layer] { [conv, bn] }
}

/// conv3×3(stride)-BN-ReLU-conv3×3-BN, plus shortcut, then ReLU (the add and ReLU fused into bn2).
public final class BasicBlock: ResidualBlock {
    let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d
    let downsample: ConvBN?
    public let outChannels: Int

    public init(_ name: String, _ inC: Int, _ outC: Int, stride: Int) {
        conv1 = Conv2d(name + ".conv1", inC, outC, kernel: 3, stride: stride, padding: 1)
        bn1 = BatchNorm2d(name + ".bn1", outC, relu: true)
        conv2 = Conv2d(name + ".conv2", outC, outC, kernel: 3, stride: 1, padding: 1)
        bn2 = BatchNorm2d(name + ".bn2", outC, relu: true)
        downsample = (stride != 1 || inC != outC) ? ConvBN(downsample: name + ".downsample", inC, outC, stride: stride) : nil
        outChannels = outC
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let shortcut = downsample?.forward(x, training: training) ?? x
        let h = bn1.forward(conv1.forward(x, training: training), training: training)
        return bn2.forward(conv2.forward(h, training: training), residual: shortcut, training: training)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let dh = conv2.backward(bn2.backward(dy))
        let dx = conv1.backward(bn1.backward(dh))
        let dShortcut = downsample?.backward(bn2.residualGradient) ?? bn2.residualGradient
        addInPlace(dx, dShortcut)
        return dx
    }

    public var children: [Layer] { [conv1, bn1, conv2, bn2] + (downsample.map { [$0] } ?? []) }
}

/// 1×1-BN-ReLU-3×3(stride)-BN-ReLU-1×1(×4)-BN, plus shortcut, then ReLU: ResNet v1.5, stride on the 3×3.
public final class Bottleneck: ResidualBlock {
    static let expansion = 4
    let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d, conv3: Conv2d, bn3: BatchNorm2d
    let downsample: ConvBN?
    public let outChannels: Int

    public init(_ name: String, _ inC: Int, _ planes: Int, stride: Int) {
        let outC = planes * Bottleneck.expansion
        conv1 = Conv2d(name + ".conv1", inC, planes, kernel: 1)
        bn1 = BatchNorm2d(name + ".bn1", planes, relu: true)
        conv2 = Conv2d(name + ".conv2", planes, planes, kernel: 3, stride: stride, padding: 1)
        bn2 = BatchNorm2d(name + ".bn2", planes, relu: true)
        conv3 = Conv2d(name + ".conv3", planes, outC, kernel: 1)
        bn3 = BatchNorm2d(name + ".bn3", outC, relu: true)
        downsample = (stride != 1 || inC != outC) ? ConvBN(downsample: name + ".downsample", inC, outC, stride: stride) : nil
        outChannels = outC
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let shortcut = downsample?.forward(x, training: training) ?? x
        let h1 = bn1.forward(conv1.forward(x, training: training), training: training)
        let h2 = bn2.forward(conv2.forward(h1, training: training), training: training)
        return bn3.forward(conv3.forward(h2, training: training), residual: shortcut, training: training)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let dh2 = conv3.backward(bn3.backward(dy))
        let dh1 = conv2.backward(bn2.backward(dh2))
        let dx = conv1.backward(bn1.backward(dh1))
        let dShortcut = downsample?.backward(bn3.residualGradient) ?? bn3.residualGradient
        addInPlace(dx, dShortcut)
        return dx
    }

    public var children: [Layer] { [conv1, bn1, conv2, bn2, conv3, bn3] + (downsample.map { [$0] } ?? []) }
}

/// a += b, elementwise.
func addInPlace(_ a: Tensor, _ b: Tensor) {
    precondition(a.count == b.count)
    let ap = a.data, bp = b.data
    Parallel.ranges(a.count, minPerTask: 1 << 15) { r in for i in r { ap[i] += bp[i] } }
}

/// d[…, 0..<k] += s[…, 0..<k] for every pixel, k = the smaller channel count: a shortcut of fewer channels
/// added into a wider output (PyramidNet's zero padding), or a concatenation's gradient added into its first
/// part (DenseNet).
func addLeadingChannels(into d: Tensor, from s: Tensor) {
    let cd = d.c, cs = s.c, k = min(cd, cs), pixels = d.count / cd
    precondition(s.count / cs == pixels, "\(s.shape) and \(d.shape) differ in pixels")
    let dp = d.data, sp = s.data
    Parallel.ranges(pixels, minPerTask: 1024) { r in
        for p in r { let o = dp + p * cd, i = sp + p * cs; for j in 0..<k { o[j] += i[j] } }
    }
}

/// d[…, 0..<C'] = g[…, offset..<offset + C'] (C' = d's channels): a block's share of a gradient whose
/// channels are a concatenation (PyramidNet's padded shortcut, DenseNet's layer output).
func sliceChannels(_ g: Tensor, from offset: Int = 0, into d: Tensor) {
    let c = g.c, cs = d.c, pixels = g.count / c
    precondition(d.count / cs == pixels && offset + cs <= c, "channels \(offset)..<\(offset + cs) do not fit \(g.shape)")
    let gp = g.data + offset, dp = d.data
    Parallel.ranges(pixels, minPerTask: 1024) { r in
        for p in r { (dp + p * cs).update(from: gp + p * c, count: cs) }
    }
}

/// y = [a, b] along channels (NHWC): y[p, 0..<Ca] = a[p], y[p, Ca..<Ca + Cb] = b[p].
func concatChannels(_ a: Tensor, _ b: Tensor, into y: Tensor) {
    let ca = a.c, cb = b.c, c = ca + cb, pixels = a.count / ca
    precondition(b.count / cb == pixels && y.count == pixels * c, "cannot concatenate \(a.shape) and \(b.shape) into \(y.shape)")
    let ap = a.data, bp = b.data, yp = y.data
    Parallel.ranges(pixels, minPerTask: 1024) { r in
        for p in r { (yp + p * c).update(from: ap + p * ca, count: ca); (yp + p * c + ca).update(from: bp + p * cb, count: cb) }
    }
}
