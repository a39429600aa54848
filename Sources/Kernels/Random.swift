/// Deterministic random numbers with an algorithm we own, so a seed means the same numbers on every
/// machine and Swift version (the standard library's `random(in:)` algorithms are not promised stable).
///
/// `RandomStream(seed:, stream:)` derives independent streams by hashing (seed, stream ids), so that, e.g.,
/// the augmentation of sample i in epoch e is a pure function of (seed, e, i), whatever thread runs it.
public struct RandomStream: Sendable {
    public var state: UInt64

    public init(seed: UInt64, stream: UInt64...) {
        var s = RandomStream.mix(seed &+ 0x9E37_79B9_7F4A_7C15)
        for id in stream { s = RandomStream.mix(s ^ RandomStream.mix(id &+ 0xD1B5_4A32_D192_ED03)) }
        state = s
    }

    /// SplitMix64's finaliser: a bijective 64-bit mixer.
    @inline(__always)
    public static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// SplitMix64 step.
    @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return RandomStream.mix(state)
    }

    /// Uniform in [0, 1) with 53 bits.
    @inline(__always)
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in [lo, hi).
    @inline(__always)
    public mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * uniform() }

    /// Uniform integer in 0..<n (Lemire's multiply-shift; the bias for n < 2^32 is below 2^-32).
    @inline(__always)
    public mutating func int(below n: Int) -> Int {
        precondition(n > 0)
        return Int((UInt64(n).multipliedFullWidth(by: next())).high)
    }

    public mutating func bernoulli(_ p: Double) -> Bool { uniform() < p }

    /// Standard normal by Box–Muller (one value per call; simple and reproducible).
    public mutating func normal() -> Double {
        var u1 = uniform()
        if u1 < 1e-300 { u1 = 1e-300 }
        let u2 = uniform()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
    }

    /// Fisher–Yates permutation of 0..<n.
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) {
                p.swapAt(i, int(below: i + 1))
            }
        }
        return p
    }
}

/// The stream ids of `RandomStream(seed:stream:…)` in training, one per consumer, so that no two draw the
/// same numbers. They are part of every seeded run's numbers (replays, resumes, PyTorch traces): never
/// renumber one.
public enum RandomStreams {
    /// A network's initial weights (`Network.initialize(seed:)`), drawn layer by layer in parameter order.
    public static let weights: UInt64 = 0x1417
    /// RecursiveMix's own consistency head H′ (`fc_roi`, `RecursiveMix.initialize(seed:)`).
    public static let consistencyHead: UInt64 = 0xF0C
    /// The augmentation of one sample, then (epoch, data-set index): the loader, whatever thread runs it.
    public static let augmentation: UInt64 = 0xA06
    /// The distributed sampler's shuffle, then (epoch): every rank draws the same permutation.
    public static let shuffle: UInt64 = 0x5A4D
    /// A mixing method's draws at a step, then (step) or (step, rank) for `--rm-box per-rank`.
    public static let mixing: UInt64 = 0x4D49
    /// `--train-limit`/`--val-limit`'s class-balanced subset: a fixed seed, not `--seed` (the same subset for
    /// every seed), then (data-set size, N).
    public static let subsetSeed: UInt64 = 0x5B5E7
}

import Foundation
@inline(__always) private func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Foundation.cos(x) }
