import Foundation
import XCTest
import Distributed
import Kernels
@testable import Training

/// `--allreduce-dtype bf16`: the rounding, and two ranks training through it.
final class BF16AllReduceTests: XCTestCase {
    /// Round to nearest, ties to even, on the bits; NaN stays NaN, overflow rounds to infinity (PyTorch's
    /// `tensor.to(torch.bfloat16)` gives the same on each value).
    func testRoundingIsToNearestEven() {
        XCTAssertEqual(BFloat16.from(1), 0x3F80)
        XCTAssertEqual(BFloat16.from(Float(bitPattern: 0x3F80_8000)), 0x3F80)     // tie, even below
        XCTAssertEqual(BFloat16.from(Float(bitPattern: 0x3F81_8000)), 0x3F82)     // tie, even above
        XCTAssertEqual(BFloat16.from(Float(bitPattern: 0x3F80_8001)), 0x3F81)     // above the tie
        XCTAssertEqual(BFloat16.from(-2.5), 0xC020)
        XCTAssertEqual(BFloat16.from(.infinity), 0x7F80)
        XCTAssertEqual(BFloat16.from(.greatestFiniteMagnitude), 0x7F80)
        XCTAssertTrue(BFloat16.float(BFloat16.from(.nan)).isNaN)
        XCTAssertTrue(BFloat16.float(BFloat16.from(Float(bitPattern: 0x7F80_0001))).isNaN, "a NaN must not round to inf")
        for f: Float in [0, -0.0, 1e-3, 3.14159, -65504, 1e30] {
            let back = BFloat16.float(BFloat16.from(f))
            XCTAssertLessThanOrEqual(abs(back - f), abs(f) * 0x1p-9, "\(f)")
        }
    }

    private func weights(_ dtype: AllReduceDtype, out: String) throws -> [[[Float]]] {
        var c = try DeterminismTests.config(seed: 5, out: out)
        c.model = "resnet8"
        c.trainLimit = 128
        c.mix = .rm
        c.batchSize = 16
        c.epochs = 1
        c.maxSteps = 4
        c.allreduceDtype = dtype
        return try InProcessWorld.run(size: 2) { comm -> [[Float]] in
            let t = try Trainer(config: c, comm: comm)
            try t.run(log: { _ in })
            return t.model.parameters.map(\.value.array)
        }.map { try $0.get() }
    }

    /// The ranks agree bit for bit, the run repeats bit for bit, and it differs from fp32's by bfloat16's
    /// rounding of the gradients (after 4 SGD steps, well under 1 % of the weights' norm).
    func testTwoRanksAgreeRepeatAndStayNearFloat32() throws {
        let tmp = NSTemporaryDirectory() + "bf16ar-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let a = try weights(.bf16, out: tmp + "/a"), b = try weights(.bf16, out: tmp + "/b")
        let f = try weights(.fp32, out: tmp + "/f")
        XCTAssertEqual(a[0], a[1], "ranks disagree")
        XCTAssertEqual(a[0], b[0], "not repeatable")
        XCTAssertNotEqual(a[0], f[0], "bf16 all-reduce changed nothing")
        var d = 0.0, n = 0.0
        for (x, y) in zip(a[0].joined(), f[0].joined()) { d += Double(x - y) * Double(x - y); n += Double(y) * Double(y) }
        XCTAssertLessThan((d / n).squareRoot(), 1e-2)
    }
}
