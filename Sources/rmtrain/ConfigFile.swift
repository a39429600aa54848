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
        // One file per run: with two, the parser would keep one and silently drop the other's settings.
        let given = rest.indices.filter { rest[$0] == "--config" || rest[$0].hasPrefix("--config=") }
        if given.count > 1 {
            let files = given.map { rest[$0] == "--config" ? ($0 + 1 < rest.count ? rest[$0 + 1] : "?") : String(rest[$0].dropFirst(9)) }
            throw Failure(description: "--config is given \(given.count) times (\(files.joined(separator: ", "))): give one file, "
                          + "and the other settings as flags (they override the file)")
        }
        var path: String?
        if let i = given.first, rest[i] == "--config" {
            guard i + 1 < rest.count else { throw Failure(description: "--config needs a file") }
            path = rest[i + 1]
            rest.removeSubrange(i...(i + 1))
        } else if let i = given.first {
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
        // A file does not include another: the key would be read as a second --config and dropped.
        if map["config"] != nil {
            throw Failure(description: "--config \(path): key 'config' is not read (a config file cannot include another): "
                          + "copy that file's keys into this one, or give the file with --config and this one's keys as flags")
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
