import XCTest
@testable import Distributed

/// The watchdog's diagnosis of a stalled collective, from the states the other ranks answer with.
final class WatchdogTests: XCTestCase {
    private func state(_ rank: Int, waiting: Bool = true, _ sequence: Int, _ op: String, step: Int = 7,
                       seconds: Double = 301) -> CollectiveState {
        CollectiveState(rank: rank, waiting: waiting, sequence: sequence, step: step, op: op, seconds: seconds)
    }

    func testStateSurvivesTheWire() {
        let s = state(3, waiting: false, 41, "grad bucket\t2", step: 12, seconds: 17.9)
        var bytes = s.encoded + [0, 0, 0]
        bytes += [UInt8](repeating: 0, count: 20)
        let back = CollectiveState(decoding: bytes)
        XCTAssertEqual(back, state(3, waiting: false, 41, "grad bucket 2", step: 12, seconds: 17))
        XCTAssertNil(CollectiveState(decoding: Array("1\t2\tx".utf8)))
    }

    func testRanksInAnotherCollectiveAreADisagreement() {
        let me = state(0, 41, "grad bucket 0")
        let msg = diagnoseStall(me: me, others: [1: state(1, 45, "metrics", step: 8), 2: state(2, 41, "grad bucket 0")], size: 3)
        XCTAssertTrue(msg.hasPrefix("ranks disagree on the collectives"), msg)
        XCTAssertTrue(msg.contains("rank 0 waits in collective #41 'grad bucket 0' at step 7, rank 1 in collective #45 'metrics' at step 8"), msg)
        XCTAssertFalse(msg.contains("rank 2"), msg)
    }

    func testSameNumberButAnotherOperationIsADisagreement() {
        let msg = diagnoseStall(me: state(0, 2, "end of run", step: 0), others: [1: state(1, 2, "extra", step: 0)], size: 2)
        XCTAssertTrue(msg.contains("rank 0 waits in collective #2 'end of run', rank 1 in collective #2 'extra'"), msg)
    }

    func testAComputingRankIsStalledAndASilentOneDeadOrStopped() {
        let msg = diagnoseStall(me: state(0, 41, "x"), others: [2: state(2, waiting: false, 40, "y", seconds: 312)], size: 4)
        XCTAssertEqual(msg, "rank 2 is not in a collective: it has computed for 312 s since it left collective #40 'y' at step 7 "
                       + "(stalled); ranks 1, 3 did not answer (dead, or stopped whole)")
        let fresh = diagnoseStall(me: state(0, 1, "x"), others: [1: state(1, waiting: false, 0, "start", step: 0, seconds: 5)], size: 2)
        XCTAssertTrue(fresh.contains("computed for 5 s since it started"), fresh)
    }

    func testEveryRankInTheSameCollectiveBlamesMPI() {
        let msg = diagnoseStall(me: state(0, 41, "x"), others: [1: state(1, 41, "x")], size: 2)
        XCTAssertEqual(msg, "every rank waits in this collective: MPI or the network stalled")
    }

    /// The watchdog thread itself: a collective held past the limit calls `abort` — here through a fake
    /// channel, so the message path runs without MPI. (exit(3) follows abort; the fake abort never returns.)
    func testTimeoutAsksTheChannel() {
        final class Channel: CollectiveStatusChannel, @unchecked Sendable {
            var served = 0
            var asked = 0
            func serve(_ state: () -> CollectiveState) { served += 1 }
            func ask(deadline: Double, answering state: () -> CollectiveState) -> [Int: CollectiveState] {
                asked += 1
                return [1: CollectiveState(rank: 1, waiting: true, sequence: 9, step: 1, op: "other", seconds: 1)]
            }
            func close() {}
        }
        let channel = Channel()
        let aborted = expectation(description: "abort")
        let dog = CollectiveWatchdog(rank: 0, size: 2, timeout: 0.2, channel: channel) { code in
            XCTAssertEqual(code, 3)
            aborted.fulfill()
            Thread.sleep(forTimeInterval: 3600)
        }
        dog.step = 1
        dog.enter("mine", sequence: dog.begin("mine"))
        wait(for: [aborted], timeout: 10)
        XCTAssertEqual(channel.asked, 1)
        XCTAssertGreaterThan(channel.served, 0)
    }
}
