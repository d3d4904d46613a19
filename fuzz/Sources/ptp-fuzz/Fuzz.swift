import Foundation
import FuzzTargets

/// The target of this run: PTP_FUZZ_TARGET (frame, tensor, edit-spec, safetensors, png).
let target: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["PTP_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        FileHandle.standardError.write(Data("set PTP_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return target
}()

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    target.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

/// SwiftPM links an executable's entry point as `<module>_main`; libFuzzer's driver runs from it.
@_cdecl("ptp_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    _ = target
    var count = argc
    var arguments = argv
    return runDriver(&count, &arguments) { fuzzOne($0, $1) }
}
#else
/// Without the fuzzer: replays the files given (a corpus, or crash inputs) through the target.
@main
struct Replay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            target.run(Array(data))
        }
        print("replayed \(CommandLine.arguments.count - 1) inputs through \(target.rawValue)")
    }
}
#endif
