import Kernels

/// y = x·Wᵀ + b with W stored [out, in] as PyTorch does.
public final class Linear: Layer {
    public let weight: Parameter, bias: Parameter
    public let inFeatures: Int, outFeatures: Int
    private var input: Tensor?
    private var output: Tensor?
    /// `--precision`: bf16-mixed multiplies bfloat16 copies of x, W and dy (`bf16gemm`, float32 accumulation
    /// and outputs) where `Precision.bf16Kernels` says bf16 pays on this CPU, as autocast runs nn.Linear.
    public var precision = Precision.fp32

    /// sgemm, or bf16gemm where bf16-mixed's multiplications run in bfloat16 here.
    private func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                      b: UnsafePointer<Float>, ldb: Int, beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if precision == .bf16Mixed && Precision.bf16Kernels.runs {
            bf16gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        } else {
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }

    public init(_ name: String, _ inFeatures: Int, _ outFeatures: Int) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = Parameter(name + ".weight", shape: [outFeatures, inFeatures], kind: .weight)
        bias = Parameter(name + ".bias", shape: [outFeatures], kind: .bias)
    }
    /// A second application of `other`'s weights with its own activation caches: gradients of both
    /// applications add into the same `Parameter.grad` (RecursiveMix's `--rm-share-head`).
    public init(sharing other: Linear) {
        inFeatures = other.inFeatures
        outFeatures = other.outFeatures
        weight = other.weight
        bias = other.bias
    }

    public var parameters: [Parameter] { [weight, bias] }

    /// PyTorch's nn.Linear default (torch/nn/modules/linear.py `reset_parameters`: `kaiming_uniform_(a=√5)`
    /// for the weight, the same bound for the bias): weight then bias, element by element from `rng`, each
    /// U(±1/√in_features).
    public func resetParameters(rng: inout RandomStream) {
        let bound = 1 / Double(inFeatures).squareRoot()
        for p in [weight, bias] { for i in 0..<p.value.count { p.value[i] = Float(rng.uniform(-bound, bound)) } }
    }
    /// Every network's definition keeps PyTorch's default for its Linear layers.
    public func initialize(convolutions: ConvolutionInit, rng: inout RandomStream) { resetParameters(rng: &rng) }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        let n = x.count / inFeatures
        precondition(x.count == n * inFeatures, "\(weight.name): input \(x.shape) is not [N, \(inFeatures)]")
        input = x
        let y = ensure(&output, [n, outFeatures])
        for r in 0..<n { (y.data + r * outFeatures).update(from: bias.value.data, count: outFeatures) }
        gemm(transB: true, m: n, n: outFeatures, k: inFeatures, a: x.data, lda: inFeatures,
              b: weight.value.data, ldb: inFeatures, beta: 1, c: y.data, ldc: outFeatures)
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        guard let x = input else { fatalError("\(weight.name): backward before forward") }
        let n = x.count / inFeatures
        gemm(transA: true, m: outFeatures, n: inFeatures, k: n, a: dy.data, lda: outFeatures,
             b: x.data, ldb: inFeatures, beta: 1, c: weight.grad.data, ldc: inFeatures)
        for r in 0..<n {
            let row = dy.data + r * outFeatures
            for j in 0..<outFeatures { bias.grad.data[j] += row[j] }
        }
        let dx = TensorPool.take(x.shape)
        gemm(m: n, n: inFeatures, k: outFeatures, a: dy.data, lda: outFeatures,
              b: weight.value.data, ldb: inFeatures, c: dx.data, ldc: inFeatures)
        return dx
    }
}
