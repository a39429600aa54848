import ArgumentParser
import Foundation
import Training
import Yams

/// `rmtrain train --config FILE.yaml`: the file's keys are `train` flags (`batch-size: 128`,
/// `nesterov: true`, `milestones: [150, 225]`); they are placed before the command line's own flags,
/// so flags given on the command line override the file. RUN_DIR/config.yaml is such a file.
enum ConfigFile {
    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Rewrites `train … --config F …` into `train <F's flags> …`; other argument lists pass unchanged.
    static func expand(_ arguments: [String]) throws -> [String] {
        guard arguments.first == "train" else { return arguments }
        var rest = Array(arguments.dropFirst())
        var path: String?
        if let i = rest.firstIndex(of: "--config") {
            guard i + 1 < rest.count else { throw Failure(description: "--config needs a file") }
            path = rest[i + 1]
            rest.removeSubrange(i...(i + 1))
        } else if let i = rest.firstIndex(where: { $0.hasPrefix("--config=") }) {
            path = String(rest[i].dropFirst("--config=".count))
            rest.remove(at: i)
        }
        guard let path else { return arguments }
        let fromFile = try flags(path)
        // Check the file's flags alone, so an error names the file rather than the command line.
        do { _ = try TrainCommand.parse(fromFile) } catch {
            throw Failure(description: "--config \(path): \(TrainCommand.message(for: error).split(separator: "\n").joined(separator: " "))")
        }
        return ["train"] + fromFile + rest
    }

    static func flags(_ path: String) throws -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw Failure(description: "--config: cannot read \(path)")
        }
        let node: Any?
        do { node = try Yams.load(yaml: text) } catch {
            throw Failure(description: "--config \(path): not valid YAML (\(error))".replacingOccurrences(of: "\n", with: " "))
        }
        guard let map = node as? [String: Any] else {
            if node == nil { return [] }
            throw Failure(description: "--config \(path): expected a mapping of flag names to values")
        }
        var out: [String] = []
        for key in map.keys.sorted() {
            let flag = "--" + key
            switch map[key] {
            case let b as Bool: if b { out.append(flag) }
            case let list as [Any]: out += [flag, list.map { "\($0)" }.joined(separator: ",")]
            case nil, is NSNull: continue
            case let v?: out += [flag, "\(v)"]
            }
        }
        return out
    }
}
