/// A training run that cannot go on (bad resume, disagreeing ranks, a refused run folder): its description
/// is the one line the user sees after "rmtrain: error:".
public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
