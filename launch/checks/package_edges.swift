// Package.swift's edges against the imports: each target must declare exactly the modules its sources import
// (`swift package dump-package` gives the declared ones; `import X` / `@testable import X` lines the used ones),
// the toolchain's own modules aside. SwiftPM builds a target that imports an undeclared module when another path
// already built it, and keeps a declared edge nobody imports: neither shows in a build.
//
// Usage: swift launch/checks/package_edges.swift [PACKAGE_DIR]   (exit 1, one line per target that differs)
import Foundation

let toolchain: Set<String> = ["Foundation", "FoundationEssentials", "Dispatch", "XCTest", "Testing", "Glibc", "Darwin", "Swift"]
let importLine = try! NSRegularExpression(
    pattern: #"^\s*(?:@\w+\s+)*import\s+(?:(?:struct|class|enum|protocol|func|var|let|typealias)\s+)?(\w+)"#,
    options: [.anchorsMatchLines])

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("package_edges: \(message)\n".utf8))
    exit(1)
}

/// The modules the Swift files under `folder` import, the toolchain's aside.
func imported(under folder: String) -> Set<String> {
    var names = Set<String>()
    let files = FileManager.default.enumerator(atPath: folder)?.compactMap { $0 as? String } ?? []
    for file in files where file.hasSuffix(".swift") {
        guard let text = try? String(contentsOfFile: folder + "/" + file, encoding: .utf8) else { continue }
        for m in importLine.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            names.insert((text as NSString).substring(with: m.range(at: 1)))
        }
    }
    return names.subtracting(toolchain)
}

let package = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : FileManager.default.currentDirectoryPath
let swift = Process()
swift.executableURL = URL(fileURLWithPath: "/usr/bin/env")
swift.arguments = ["swift", "package", "--package-path", package, "dump-package"]
let pipe = Pipe()
swift.standardOutput = pipe
do { try swift.run() } catch { fail("cannot run swift package dump-package: \(error)") }
let json = pipe.fileHandleForReading.readDataToEndOfFile()
swift.waitUntilExit()
guard swift.terminationStatus == 0,
      let dump = try? JSONSerialization.jsonObject(with: json) as? [String: Any],
      let targets = dump["targets"] as? [[String: Any]] else { fail("swift package dump-package failed in \(package)") }

var problems: [String] = []
for t in targets {
    guard let name = t["name"] as? String, let type = t["type"] as? String, type != "system" else { continue }
    // Each dependency is {"byName"|"target"|"product": [name, …]}: the target's name, or the product's (its module's).
    let edges = Set((t["dependencies"] as? [[String: Any]] ?? []).compactMap { ($0.values.first as? [Any])?.first as? String })
    let folder = package + "/" + ((t["path"] as? String) ?? ((type == "test" ? "Tests/" : "Sources/") + name))
    let used = imported(under: folder)
    if !used.subtracting(edges).isEmpty {
        problems.append("\(name) imports \(used.subtracting(edges).sorted().joined(separator: ", ")) without declaring it in Package.swift")
    }
    if !edges.subtracting(used).isEmpty {
        problems.append("\(name) declares \(edges.subtracting(used).sorted().joined(separator: ", ")) in Package.swift but never imports it")
    }
}
for p in problems { FileHandle.standardError.write(Data("package_edges: \(p)\n".utf8)) }
if !problems.isEmpty { exit(1) }
print("package_edges: every target's dependencies are its imports (\(targets.count) targets)")
