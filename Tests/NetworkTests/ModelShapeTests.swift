import XCTest
import Kernels
import Layers
import Models

/// The architectures: parameter counts equal torchvision's (ImageNet ResNets, 1000 classes) and the
/// CIFAR ResNets' published sizes, and the feature map before pooling has the documented size.
final class ModelShapeTests: XCTestCase {
    func testParameterCountsMatchTorchvision() {
        XCTAssertEqual(ResNet(.resnet18, inChannels: 3, numClasses: 1000).parameterCount, 11_689_512)
        XCTAssertEqual(ResNet(.resnet34, inChannels: 3, numClasses: 1000).parameterCount, 21_797_672)
        XCTAssertEqual(ResNet(.resnet50, inChannels: 3, numClasses: 1000).parameterCount, 25_557_032)
        XCTAssertEqual(ResNet(.cifarResnet18, inChannels: 3, numClasses: 10).parameterCount, 11_173_962)
        XCTAssertEqual(ResNet(.cifarResnet34, inChannels: 3, numClasses: 100).parameterCount, 21_328_292)
        // He et al.'s ResNet-20/56 with projection shortcuts (1×1 conv + BN) where the shape changes.
        XCTAssertEqual(ResNet(.resnet20, inChannels: 3, numClasses: 10).parameterCount, 272_474)
        XCTAssertEqual(ResNet(.resnet56, inChannels: 3, numClasses: 10).parameterCount, 855_770)
    }

    /// PyramidNet without the RoI head, as the RecursiveMix authors' models_cifar/pyramidnet.py counts it
    /// (`PyramidNet('cifar100', 164, 270, 100, bottleneck=True)` …; our plain-torch definition gives the
    /// same: python3 launch/bench/torch_models.py). PyramidNet-200 on CIFAR-10 is Table 1's 26.8 M.
    func testPyramidNetParameterCountsMatchTheAuthors() {
        func make(_ name: String, _ k: Int) -> Int { Networks.make(name, inChannels: 3, numClasses: k)!.parameterCount }
        XCTAssertEqual(make("pyramidnet164", 100), 27_319_071)
        XCTAssertEqual(make("pyramidnet164", 10), 27_216_021)
        XCTAssertEqual(make("pyramidnet200", 10), 26_752_702)
        XCTAssertEqual(make("pyramidnet200", 100), 26_844_952)
        XCTAssertEqual(make("pyramidnet11", 10), 54_202)
    }

    /// DenseNet without the RoI head (`linear_roi`), as models_cifar/densenet.py counts it
    /// (`densenet121(num_classes=100)` …; our plain-torch definition gives the same and loads the authors'
    /// state dict strictly: python3 launch/bench/torch_models.py). Table 3: 7.0 M and 26.7 M on CIFAR-100.
    func testDenseNetParameterCountsMatchTheAuthors() {
        func make(_ name: String, _ k: Int) -> Int { Networks.make(name, inChannels: 3, numClasses: k)!.parameterCount }
        XCTAssertEqual(make("densenet121", 100), 7_048_548)
        XCTAssertEqual(make("densenet121", 10), 6_956_298)
        XCTAssertEqual(make("densenet161", 100), 26_681_188)
        XCTAssertEqual(make("densenet161", 10), 26_482_378)
        XCTAssertEqual(make("densenet13", 10), 12_490)
    }

    func testFeatureMapSizes() {
        let cases: [(ResNet.Variant, Int, [Int])] = [
            (.resnet20, 32, [2, 8, 8, 64]), (.cifarResnet18, 32, [2, 4, 4, 512]),
            (.resnet18, 64, [2, 2, 2, 512]), (.resnet50, 64, [2, 2, 2, 2048]),
        ]
        for (v, size, want) in cases {
            let m = ResNet(v, inChannels: 3, numClasses: 10)
            m.initialize(seed: 1)
            let x = Tensor(shape: [2, size, size, 3])
            let logits = m.forward(x, training: false)
            XCTAssertEqual(m.features?.shape, want, "\(v)")
            XCTAssertEqual(logits.shape, [2, 10])
            XCTAssertEqual(m.featureChannels, want[3])
        }
    }

    /// torchvision's init: conv std √(2/fan_out), BN γ = 1 and β = 0, Linear U(±1/√fan_in).
    func testInitialisationStatistics() {
        let m = ResNet(.resnet50, inChannels: 3, numClasses: 1000)
        m.initialize(seed: 3)
        for p in m.parameters {
            let v = p.value.array
            switch p.kind {
            case .normScale: XCTAssertTrue(v.allSatisfy { $0 == 1 })
            case .normShift: XCTAssertTrue(v.allSatisfy { $0 == 0 })
            case .weight where p.value.shape.count == 4 && v.count >= 20_000:
                let s = p.value.shape, fanOut = Double(s[0] * s[1] * s[2])
                let std = (v.reduce(0) { $0 + Double($1) * Double($1) } / Double(v.count)).squareRoot()
                XCTAssertEqual(std, (2 / fanOut).squareRoot(), accuracy: 0.05 * (2 / fanOut).squareRoot(), p.name)
            case .weight where p.value.shape.count == 2:
                let bound = Float(1 / Double(p.value.shape[1]).squareRoot())
                XCTAssertTrue(v.allSatisfy { abs($0) <= bound }, p.name)
            default: break
            }
        }
    }

    /// DenseNet starts as PyTorch's nn.Conv2d default (the authors' file sets no init): conv weights
    /// U(±1/√fan_in), whose std is bound/√3; the feature map after three transitions is 32/8 = 4 pixels wide.
    func testDenseNetInitialisationAndFeatureMap() throws {
        let m = try XCTUnwrap(Networks.make("densenet121", inChannels: 3, numClasses: 100))
        m.initialize(seed: 5)
        for p in m.parameters where p.kind == .weight && p.value.shape.count == 4 {
            let s = p.value.shape, bound = 1 / Double(s[1] * s[2] * s[3]).squareRoot()
            let v = p.value.array
            XCTAssertTrue(v.allSatisfy { abs(Double($0)) <= bound }, p.name)
            guard v.count >= 20_000 else { continue }
            let std = (v.reduce(0) { $0 + Double($1) * Double($1) } / Double(v.count)).squareRoot()
            XCTAssertEqual(std, bound / 3.0.squareRoot(), accuracy: 0.05 * bound, p.name)
        }
        _ = m.forward(Tensor(shape: [2, 32, 32, 3]), training: false)
        XCTAssertEqual(m.features?.shape, [2, 4, 4, 1024])
    }
}
