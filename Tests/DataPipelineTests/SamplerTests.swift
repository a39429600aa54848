import XCTest
@testable import DataPipeline

final class SamplerTests: XCTestCase {
    func testRankSlicesAreDisjointAndCoverTheEpoch() {
        for count in [10, 97, 1000] {
            for world in 1...8 {
                for epoch in 0..<2 {
                    var seen = [Int](repeating: 0, count: count)
                    var total = 0
                    for rank in 0..<world {
                        let s = DistributedSampler(count: count, worldSize: world, rank: rank, shuffle: true, seed: 7)
                        let idx = s.indices(epoch: epoch)
                        XCTAssertEqual(idx.count, (count + world - 1) / world)
                        for i in idx { seen[i] += 1 }
                        total += idx.count
                    }
                    XCTAssertTrue(seen.allSatisfy { $0 >= 1 }, "count \(count) world \(world): not covered")
                    // Padding repeats at most world-1 samples once.
                    XCTAssertEqual(total - count, (world - count % world) % world)
                    XCTAssertTrue(seen.allSatisfy { $0 <= 2 })
                }
            }
        }
    }

    func testDropLastCutsAndOrderChangesWithEpoch() {
        let s0 = DistributedSampler(count: 103, worldSize: 4, rank: 1, shuffle: true, seed: 7, dropLast: true)
        XCTAssertEqual(s0.indices(epoch: 0).count, 25)
        XCTAssertNotEqual(s0.indices(epoch: 0), s0.indices(epoch: 1))
        XCTAssertEqual(s0.indices(epoch: 3), s0.indices(epoch: 3))
        let unshuffled = DistributedSampler(count: 10, worldSize: 3, rank: 2, shuffle: false, seed: 7)
        XCTAssertEqual(unshuffled.indices(epoch: 5), [2, 5, 8, 1])
    }
}

final class SamplerEpochTests: XCTestCase {
    func testSlicesChangeWithTheEpochForEveryWorldSize() {
        for world in 1...8 {
            for rank in 0..<world {
                let s = DistributedSampler(count: 1000, worldSize: world, rank: rank, shuffle: true, seed: 3)
                XCTAssertNotEqual(s.indices(epoch: 0), s.indices(epoch: 1), "world \(world) rank \(rank)")
                XCTAssertEqual(s.indices(epoch: 4), s.indices(epoch: 4))
            }
            // Disjoint with drop-last too: no index twice, count/world each.
            var seen = Set<Int>()
            for rank in 0..<world {
                let idx = DistributedSampler(count: 1003, worldSize: world, rank: rank, shuffle: true, seed: 3, dropLast: true)
                    .indices(epoch: 2)
                XCTAssertEqual(idx.count, 1003 / world)
                for i in idx { XCTAssertTrue(seen.insert(i).inserted, "world \(world): \(i) twice") }
            }
        }
    }

    func testEvaluationSamplerCountsEveryIndexOnce() {
        for count in [0, 1, 7, 10000] {
            for world in 1...8 {
                var seen = [Int](repeating: 0, count: count)
                var total = 0
                for rank in 0..<world {
                    let s = DistributedSampler.evaluation(count: count, worldSize: world, rank: rank)
                    let idx = s.indices(epoch: 3)
                    XCTAssertEqual(idx.count, s.samplesPerRank)
                    XCTAssertEqual(idx, Array(stride(from: rank, to: count, by: world)))
                    for i in idx { seen[i] += 1 }
                    total += idx.count
                }
                XCTAssertEqual(total, count)
                XCTAssertTrue(seen.allSatisfy { $0 == 1 })
            }
        }
    }
}
