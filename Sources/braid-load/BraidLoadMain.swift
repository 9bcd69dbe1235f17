import ArgumentParser
import BraidLoad

/// The `braid-load` entry point: the command tree of ``BraidLoadCommand``, run by ArgumentParser's
/// asynchronous `main()` (exit codes are documented there).
@main
struct BraidLoadMain: AsyncParsableCommand {
    static let configuration = BraidLoadCommand.configuration
}
