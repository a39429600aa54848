import XCTest
import Kernels
import Layers
@testable import Models

private typealias GC = GradientCheck

/// Every layer type through the one `Layer` contract and the one gradient checker (`GC.checkLayer`):
/// the single layers, and the composite ones networks are lists of.
final class LayerContractTests: XCTestCase {
    /// Random weights (and BN γ, β away from their initial values) so that no gradient is trivially 0 or 1.
    private func randomise(_ layer: Layer, seed: UInt64) {
        for (i, p) in layer.parameters.enumerated() {
            let shift = p.kind == .normScale ? 1.0 : 0
            p.value.copy(from: GC.randomTensor(p.value.shape, seed: seed, stream: UInt64(100 + i), scale: 0.3, shift: shift))
        }
    }

    private func run(_ name: String, _ layer: Layer, _ shape: [Int], training: Bool = true, directional: Bool = false,
                     tolerance: Double = 1e-2, eps: Float = 1e-2, seed: UInt64, line: UInt = #line) {
        randomise(layer, seed: seed)
        GC.checkLayer(name, layer, input: GC.randomTensor(shape, seed: seed, stream: 7), training: training, seed: seed,
                      tolerance: tolerance, eps: eps, directional: directional, line: line)
    }

    func testSingleLayers() {
        run("conv3x3 s2", Conv2d("c", 3, 5, kernel: 3, stride: 2, padding: 1, bias: true), [2, 7, 7, 3], seed: 1)
        run("conv1x1", Conv2d("c", 4, 6, kernel: 1), [2, 5, 5, 4], seed: 2)
        run("linear", Linear("fc", 6, 4), [3, 6], seed: 3)
        run("global avg pool", GlobalAvgPool(), [2, 3, 3, 4], seed: 4)
        run("max pool 3x3 s2", MaxPool2d(kernel: 3, stride: 2, padding: 1), [2, 6, 6, 3], seed: 5)
        run("avg pool 2x2 s2", AvgPool2d(kernel: 2), [2, 6, 6, 3], seed: 8)
        run("avg pool 2x2 s2, odd size (ceil mode)", AvgPool2d(kernel: 2), [2, 5, 7, 3], seed: 9)
        run("avg pool 2x2 s2, odd size (floor mode)", AvgPool2d(kernel: 2, ceilMode: false), [2, 5, 7, 3], seed: 10)
        run("batch norm (eval)", BatchNorm2d("bn", 4, relu: false), [2, 3, 3, 4], training: false, seed: 6)
        run("batch norm + relu (train)", BatchNorm2d("bn", 4, relu: true), [4, 3, 3, 4], directional: true,
            tolerance: 2e-2, eps: 1e-3, seed: 7)
    }

    func testCompositeLayers() {
        run("conv + bn (stem)", ConvBN(conv: Conv2d("conv1", 3, 4, kernel: 3, padding: 1), bn: BatchNorm2d("bn1", 4, relu: true)),
            [4, 5, 5, 3], directional: true, tolerance: 2e-2, eps: 1e-3, seed: 11)
        run("projection shortcut", ConvBN(downsample: "d", 4, 8, stride: 2), [4, 6, 6, 4], directional: true,
            tolerance: 2e-2, eps: 1e-3, seed: 12)
        run("basic block", BasicBlock("b", 4, 4, stride: 1), [4, 5, 5, 4], directional: true, tolerance: 2e-2, eps: 1e-3, seed: 13)
        run("basic block, downsampling", BasicBlock("b", 4, 8, stride: 2), [4, 6, 6, 4], directional: true,
            tolerance: 2e-2, eps: 1e-3, seed: 14)
        run("bottleneck", Bottleneck("b", 8, 2, stride: 2), [4, 6, 6, 8], directional: true, tolerance: 2e-2, eps: 1e-3, seed: 15)
        run("pyramid bottleneck, zero-padded shortcut", PyramidBottleneck("p", 4, 2, stride: 1), [4, 5, 5, 4], directional: true,
            tolerance: 2e-2, eps: 1e-3, seed: 16)
        run("pyramid bottleneck, pooled and padded shortcut", PyramidBottleneck("p", 4, 3, stride: 2), [4, 6, 6, 4],
            directional: true, tolerance: 2e-2, eps: 1e-3, seed: 17)
        run("dense layer, channel concatenation", DenseLayer("d", 5, growthRate: 3), [4, 5, 5, 5], directional: true,
            tolerance: 2e-2, eps: 1e-3, seed: 18)
        run("transition, odd size", Transition("t", 6, 3), [4, 5, 5, 6], directional: true, tolerance: 2e-2, eps: 1e-3, seed: 19)
    }

    /// A network is its layers in order: backward visits them reversed, and reports each layer's parameters
    /// ready in that order (what the gradient buckets rely on).
    func testNetworkBackwardOrderFollowsItsLayers() {
        let net = ResNet(.resnet8, inChannels: 3, numClasses: 4)
        net.initialize(seed: 1)
        let logits = net.forward(GC.randomTensor([2, 8, 8, 3], seed: 2), training: true)
        var ready: [[String]] = []
        net.backward(logitsGradient: GC.randomTensor(logits.shape, seed: 3), featureGradient: nil) { ready.append($0.map(\.name)) }
        XCTAssertEqual(ready, net.parameterGroupsInBackwardOrder.map { $0.map(\.name) })
        XCTAssertEqual(ready.first, ["fc.weight", "fc.bias"])
        XCTAssertEqual(ready.last, ["conv1.weight", "bn1.weight", "bn1.bias"])
        XCTAssertEqual(Set(ready.joined()), Set(net.parameters.map(\.name)))
    }
}
