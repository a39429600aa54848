import DataPipeline

/// Where a finished step stands, for the observers.
struct StepPlace {
    /// The global optimizer step, 1-based (the step just taken).
    var step: Int
    /// The epoch (0-based) and the batch within it (0-based), of `batchesPerEpoch`.
    var epoch: Int, batch: Int, batchesPerEpoch: Int
    /// The learning rate the step used, and whether the optimizer applied it (not a skipped non-finite step).
    var lr: Double, applied: Bool
}

/// Looks at what a step produced, once the step's core (mixing, forward, backward with the all-reduce,
/// optimizer update) is done, from one place (`Trainer.trainStep`): the trace (`--trace`) and the
/// TensorBoard picture of the mixed batches. An observer changes nothing that training reads, so a run
/// trains the same numbers with or without them (llm.c's split of the step from its diagnostics).
protocol StepObserver: AnyObject {
    /// Whether the step must keep a copy of the batch before mixing (`StepResult.unmixed`).
    var needsUnmixed: Bool { get }
    /// Throws what writing its files throws, naming the file.
    func observe(_ output: StepResult, of batch: Batch, at place: StepPlace) throws
}
