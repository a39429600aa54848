import Foundation
import Kernels
import Layers

/// The ResNets of the paper's experiments, as a `Network`: the stem, the residual stages, then pooling
/// and `fc` (torchvision's names). The feature map before pooling is what RecursiveMix's head reads.
public final class ResNet: Network, @unchecked Sendable {
    public enum Variant: String, CaseIterable, Sendable {
        case resnet8, resnet20, resnet56                // CIFAR, 3 stages of 16/32/64 channels (n = 1, 3, 9)
        case cifarResnet18 = "cifar-resnet18", cifarResnet34 = "cifar-resnet34"   // 3×3 stem, no max-pool
        case resnet18, resnet34, resnet50                // ImageNet, torchvision v1.5 layout
    }

    public let variant: Variant
    public let inChannels: Int

    public init(_ variant: Variant, inChannels: Int, numClasses: Int) {
        self.variant = variant
        self.inChannels = inChannels
        var layers: [Layer] = []
        func stages(_ widths: [Int], _ counts: [Int], strides: [Int], start: Int,
                    _ make: (String, Int, Int, Int) -> ResidualBlock) -> Int {
            var c = start
            for (s, (width, count)) in zip(widths, counts).enumerated() {
                for i in 0..<count {
                    let block = make("layer\(s + 1).\(i)", c, width, i == 0 ? strides[s] : 1)
                    layers.append(block)
                    c = block.outChannels
                }
            }
            return c
        }
        func stem(_ width: Int, kernel: Int, stride: Int) {
            layers.append(ConvBN(conv: Conv2d("conv1", inChannels, width, kernel: kernel, stride: stride, padding: kernel / 2),
                                 bn: BatchNorm2d("bn1", width, relu: true)))
        }
        let basic: (String, Int, Int, Int) -> ResidualBlock = { BasicBlock($0, $1, $2, stride: $3) }
        let featureChannels: Int
        switch variant {
        case .resnet8, .resnet20, .resnet56:
            // depth 6n + 2 (He et al. 2016, §4.2); ResNet-8 is the tiny one of golden traces and smoke tests.
            let n = [.resnet8: 1, .resnet20: 3, .resnet56: 9][variant]!
            stem(16, kernel: 3, stride: 1)
            featureChannels = stages([16, 32, 64], [n, n, n], strides: [1, 2, 2], start: 16, basic)
        case .cifarResnet18, .cifarResnet34:
            stem(64, kernel: 3, stride: 1)
            let counts = variant == .cifarResnet18 ? [2, 2, 2, 2] : [3, 4, 6, 3]
            featureChannels = stages([64, 128, 256, 512], counts, strides: [1, 2, 2, 2], start: 64, basic)
        case .resnet18, .resnet34, .resnet50:
            stem(64, kernel: 7, stride: 2)
            layers.append(MaxPool2d(kernel: 3, stride: 2, padding: 1))
            if variant != .resnet50 {
                let counts = variant == .resnet18 ? [2, 2, 2, 2] : [3, 4, 6, 3]
                featureChannels = stages([64, 128, 256, 512], counts, strides: [1, 2, 2, 2], start: 64, basic)
            } else {
                featureChannels = stages([64, 128, 256, 512], [3, 4, 6, 3], strides: [1, 2, 2, 2], start: 64) {
                    Bottleneck($0, $1, $2, stride: $3)
                }
            }
        }
        super.init(name: variant.rawValue, layers: layers, featureChannels: featureChannels, numClasses: numClasses)
    }
}
