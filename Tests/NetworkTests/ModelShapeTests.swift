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

    /// The paper's CIFAR networks without the RoI head (`fc_roi`; DenseNet's `linear_roi`), as the RecursiveMix
    /// authors' models_cifar/pyramidnet.py (`PyramidNet('cifar100', 164, 270, 100, bottleneck=True)` …) and
    /// densenet.py (`densenet121(num_classes=100)` …) count them; our plain-torch definitions give the same
    /// (python3 launch/bench/torch_models.py) and load the authors' state dicts strictly. Table 1:
    /// PyramidNet-200 on CIFAR-10, 26.8 M; Table 3: DenseNet-121 and -161 on CIFAR-100, 7.0 M and 26.7 M.
    func testPaperNetworkParameterCountsMatchTheAuthors() {
        let expected: [(String, Int, Int)] = [
            ("pyramidnet164", 100, 27_319_071), ("pyramidnet164", 10, 27_216_021), ("pyramidnet200", 10, 26_752_702),
            ("pyramidnet200", 100, 26_844_952), ("pyramidnet11", 10, 54_202),
            ("densenet121", 100, 7_048_548), ("densenet121", 10, 6_956_298), ("densenet161", 100, 26_681_188),
            ("densenet161", 10, 26_482_378), ("densenet13", 10, 12_490),
        ]
        for (name, classes, count) in expected {
            XCTAssertEqual(Networks.make(name, inChannels: 3, numClasses: classes)?.parameterCount, count, "\(name), \(classes) classes")
        }
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

    /// Every seeded run so far started from these weights: the FNV-1a of each network's parameters and
    /// buffers after `initialize(seed: 7)`, in order (recorded before the layers initialised themselves,
    /// when `Network.initialize` chose each rule from a parameter's kind and shape). One network per family
    /// and convolution rule; a change of draw order, rule or stream changes a hash.
    func testInitialWeightsAreEveryEarlierRunsWeights() throws {
        let expected: [(String, UInt64)] = [
            ("resnet8", 0x7084_5df5_7ebd_2852), ("resnet18", 0x8eba_a628_a7c7_cdfc), ("resnet50", 0xb73f_f986_9f81_dc88),
            ("pyramidnet11", 0xcc40_8918_45cf_7b81), ("densenet13", 0xba2a_aec1_96b9_2ae3),
        ]
        for (name, want) in expected {
            let m = try XCTUnwrap(Networks.make(name, inChannels: 3, numClasses: 10))
            m.initialize(seed: 7)
            var h = FNV1a()
            for t in m.parameters.map(\.value) + m.buffers.map(\.value) {
                h.add(UnsafeRawBufferPointer(start: t.data, count: t.count * MemoryLayout<Float>.size))
            }
            XCTAssertEqual(h.value, want, "\(name): 0x\(String(h.value, radix: 16))")
        }
    }

    /// A convolution with a bias (none of the paper's networks has one) initialises it by its own rule, not by a
    /// guess from the network: 0 under torchvision's, U(±1/√fan_in) under PyTorch's default, drawn after the weight.
    func testConvolutionBiasFollowsItsRule() {
        let conv = Conv2d("c", 3, 64, kernel: 3, bias: true)
        var rng = RandomStream(seed: 1)
        conv.initialize(convolutions: .kaimingNormalFanOut, rng: &rng)
        XCTAssertTrue(conv.bias!.value.array.allSatisfy { $0 == 0 })
        conv.initialize(convolutions: .pytorchDefault, rng: &rng)
        let bound = Float(1 / Double(3 * 3 * 3).squareRoot())
        let b = conv.bias!.value.array
        XCTAssertTrue(b.allSatisfy { abs($0) <= bound })
        XCTAssertGreaterThan(b.map(abs).max()!, bound / 2)
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
