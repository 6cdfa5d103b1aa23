import Foundation
import Thudo

/// README.md's Swift sample, compiled (never run: the names it takes from the app are
/// parameters here). A test (tests/tests/doc_samples.rs) checks that every line of every Swift
/// sample in README.md is in compiled code, so the README cannot drift from the API.
enum ReadmeSamples {
    static func vault(path: String, pass: String, text: String) async throws {
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: pass, options: nil)
        try await vault.put(collection: "notes", id: "n1", body: Data(text.utf8), index: [:])
        let note = try await vault.get(collection: "notes", id: "n1")
        _ = note
        await vault.shutdown()
    }
}
