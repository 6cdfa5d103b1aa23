// Every thudo error's `description` is the library's own sentence (its Rust `Display`); the
// generated code declares it but not the conformance. With it, `localizedDescription` and
// string interpolation give that sentence rather than a dump of the enum. For the app's own
// localised text, switch on `code()`; `isRetryable()` says whether trying later can help.
extension VaultError: CustomStringConvertible {}
extension KeyProviderError: CustomStringConvertible {}
extension SyncError: CustomStringConvertible {}
extension HandbookError: CustomStringConvertible {}
extension HealthBookError: CustomStringConvertible {}
extension HealthCardError: CustomStringConvertible {}
extension ScheduleError: CustomStringConvertible {}
extension TransitError: CustomStringConvertible {}
extension SignerError: CustomStringConvertible {}
extension HttpError: CustomStringConvertible {}
