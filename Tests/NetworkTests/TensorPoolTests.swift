import XCTest
@testable import Kernels
@testable import Models

/// The shared gradient buffers: a buffer someone holds is never handed out again, a released one is (the
/// smallest free one that fits), and after one training step a network's backward allocates nothing more.
final class TensorPoolTests: XCTestCase {
    func testHeldBuffersAreNeverSharedAndReleasedOnesAreReused() {
        // 12,347 floats: a size no other test asks for, so the best fit for it is the buffer released here.
        var a: Tensor? = TensorPool.take([12_347])
        let b = TensorPool.take([12_347])
        XCTAssertFalse(a === b, "a buffer still held was handed out again")
        a!.fill(1)
        b.fill(2)
        XCTAssertTrue(a!.array.allSatisfy { $0 == 1 }, "writing one buffer changed another")
        let released = ObjectIdentifier(a!)
        a = nil
        let c = TensorPool.take([12_347])
        XCTAssertEqual(ObjectIdentifier(c), released, "the released buffer was not reused")
        XCTAssertFalse(c === b)
        let d = TensorPool.take([12_347])
        XCTAssertFalse(d === b || d === c, "a buffer still held was handed out again")
    }

    func testABackwardPassAllocatesNothingAfterTheFirstStep() throws {
        let m = try XCTUnwrap(Networks.make("densenet13", inChannels: 3, numClasses: 10))
        m.initialize(seed: 1)
        let x = Tensor(shape: [4, 16, 16, 3])
        for i in 0..<x.count { x[i] = Float(i % 7) - 3 }
        let dz = Tensor(shape: [4, 10])
        dz.fill(0.1)
        func step() { _ = m.forward(x, training: true); m.backward(logitsGradient: dz, featureGradient: nil, gradientsReady: nil) }
        step()
        let after1 = TensorPool.bytes
        step()
        step()
        XCTAssertEqual(TensorPool.bytes, after1, "steps after the first took new gradient buffers")
    }
}
