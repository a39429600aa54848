import Foundation

/// Buffers for activation gradients, shared by every layer of every model in the process.
///
/// Why: a layer's input gradient lives only until the layer before it has used it, yet a buffer per layer
/// kept all of them allocated at once: more than half of a deep network's memory (PyramidNet-164 at batch
/// 32: 8.9 GB; DenseNet-121 likewise). A pooled buffer is free again as soon as nobody but the pool holds
/// it (Swift's reference count says so), so the pool holds only as many buffers as are alive at once in
/// a backward pass (a handful), each grown to the largest size asked of it, and after the first step a
/// training step takes them without allocating.
///
/// Contract for callers: `take` returns a buffer of `shape` with arbitrary contents, which the caller
/// overwrites entirely; keep the reference exactly as long as the gradient is needed. Thread-safe (the
/// in-process ranks of the tests share the pool); which buffer a caller gets never changes a value.
public enum TensorPool {
    nonisolated(unsafe) private static var pool: [Tensor] = []
    nonisolated(unsafe) private static let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()

    /// A buffer nobody else holds, reshaped to `shape`: the smallest free one that fits, else the largest
    /// free one grown, else a new one.
    public static func take(_ shape: [Int]) -> Tensor {
        let need = shape.reduce(1, *)
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        var fit: Int?, largest: Int?
        for i in pool.indices where isKnownUniquelyReferenced(&pool[i]) {
            let capacity = pool[i].capacity
            if capacity >= need {
                if fit.map({ capacity < pool[$0].capacity }) ?? true { fit = i }
            } else if largest.map({ capacity > pool[$0].capacity }) ?? true {
                largest = i
            }
        }
        let t: Tensor
        if let i = fit ?? largest {
            t = pool[i]
            t.reshape(shape)
        } else {
            t = Tensor(shape: shape)
            pool.append(t)
        }
        return t
    }

    /// Bytes the pool holds (for memory diagnostics).
    public static var bytes: Int {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return pool.reduce(0) { $0 + $1.capacity * MemoryLayout<Float>.stride }
    }
}
