import XCTest
@testable import Kernels
@testable import Layers
@testable import Models

/// Parameters as slices of two flat buffers: values survive the move, every holder sees the views, a
/// parameter listed twice (a shared head) is laid out once, and the layout follows the order given.
final class FlatParametersTests: XCTestCase {
    func testParametersBecomeViewsOfTwoFlatBuffers() throws {
        let m = try XCTUnwrap(Networks.make("resnet8", inChannels: 3, numClasses: 10))
        m.initialize(seed: 4)
        let before = m.parameters.map(\.value.array)
        let groups = m.parameterGroupsInBackwardOrder
        let flat = FlatParameters(groups.flatMap { $0 } + [m.classifier.weight])   // the classifier listed twice
        XCTAssertEqual(flat.parameters.count, m.parameters.count)
        XCTAssertEqual(flat.values.count, m.parameterCount)
        XCTAssertEqual(m.parameters.map(\.value.array), before, "values changed when moved into the flat buffer")
        // The layout is the order given: backward's, classifier first.
        var expected = 0
        for p in groups.flatMap({ $0 }) {
            XCTAssertEqual(flat.offset(of: p), expected, p.name)
            XCTAssertEqual(p.value.data, flat.values.data + expected)
            XCTAssertEqual(p.grad.data, flat.grads.data + expected)
            expected += p.value.count
        }
        // Writing through the flat buffer is seen by every parameter, and the other way round.
        flat.grads.fill(2)
        XCTAssertTrue(m.parameters.allSatisfy { $0.grad.array.allSatisfy { $0 == 2 } })
        for p in m.parameters { p.grad.zero() }
        XCTAssertTrue(flat.grads.array.allSatisfy { $0 == 0 })
        m.classifier.bias.grad[0] = .nan
        XCTAssertFalse(flat.grads.isFinite)
    }
}
