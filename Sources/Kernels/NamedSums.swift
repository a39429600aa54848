/// Counters that a run sums over steps, reduces across ranks and keeps in checkpoints, each by its name.
/// A conforming struct lists its fields once, as (name, key path): the name is the checkpoint key (and
/// what a reader sees), the key path the typed field the code uses — no positional `[Double]`.
///
///     struct EpochSums: NamedSums {
///         var lossSum = 0.0, seen = 0.0
///         static var fields: [NamedSumsField<Self>] { [("loss_sum", \.lossSum), ("seen", \.seen)] }
///     }
///
/// `fields` is a computed property (key paths are not Sendable, so it cannot be a stored static).
/// `Communicator.allReduceSum(_:_:)` (Distributed) reduces one; `entries(prefix:)` and
/// `init(entries:prefix:)` store and restore one, each counter as its own exact Double.
public protocol NamedSums: Equatable, Sendable {
    init()
    static var fields: [NamedSumsField<Self>] { get }
}

public typealias NamedSumsField<S> = (name: String, path: WritableKeyPath<S, Double>)

public extension NamedSums {
    /// The counters in the order of `fields` (what travels in one all-reduce).
    var values: [Double] {
        get { Self.fields.map { self[keyPath: $0.path] } }
        set {
            precondition(newValue.count == Self.fields.count, "\(Self.self): \(newValue.count) values for \(Self.fields.count) fields")
            for (f, v) in zip(Self.fields, newValue) { self[keyPath: f.path] = v }
        }
    }

    /// One checkpoint entry per counter, named `prefix.name`, holding the Double exactly (two floats of bits).
    func entries(prefix: String) -> [SafeTensors.Entry] {
        Self.fields.map { SafeTensors.Entry(name: "\(prefix).\($0.name)", shape: [2], values: packDoubles([self[keyPath: $0.path]])) }
    }

    /// The counters stored by `entries(prefix:)`; a counter the checkpoint lacks (written before it
    /// existed) starts at 0. `legacy` reads the positional array of checkpoints older than named sums:
    /// (its entry name, the field names in its order).
    init(entries: [String: SafeTensors.Entry], prefix: String, legacy: (name: String, order: [String])? = nil) {
        self.init()
        if let legacy, let old = entries[legacy.name], entries.keys.allSatisfy({ !$0.hasPrefix(prefix + ".") }) {
            let values = unpackDoubles(old.values)
            for (name, v) in zip(legacy.order, values) {
                if let f = Self.fields.first(where: { $0.name == name }) { self[keyPath: f.path] = v }
            }
            return
        }
        for f in Self.fields {
            if let e = entries["\(prefix).\(f.name)"], let v = unpackDoubles(e.values).first { self[keyPath: f.path] = v }
        }
    }

    /// Field by field sum.
    static func + (a: Self, b: Self) -> Self {
        var s = a
        for f in fields { s[keyPath: f.path] += b[keyPath: f.path] }
        return s
    }
}

/// Doubles stored exactly in a float32 tensor (two floats of bits each).
public func packDoubles(_ v: [Double]) -> [Float] {
    v.flatMap { d -> [Float] in
        let b = d.bitPattern
        return [Float(bitPattern: UInt32(truncatingIfNeeded: b)), Float(bitPattern: UInt32(truncatingIfNeeded: b >> 32))]
    }
}

/// The Doubles of `packDoubles`.
public func unpackDoubles(_ f: [Float]) -> [Double] {
    stride(from: 0, to: f.count - 1, by: 2).map {
        Double(bitPattern: UInt64(f[$0].bitPattern) | UInt64(f[$0 + 1].bitPattern) << 32)
    }
}
