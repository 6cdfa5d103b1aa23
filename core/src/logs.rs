//! What every host of thudo's log records shares (the FFI's sink, the CLI's stderr): which
//! records are thudo's own, and their structured fields.

/// Whether `record` is thudo's own. Its dependencies (HTTP, TLS) log URLs and headers, which
/// hold ids and tokens: never pass those on.
pub fn is_own(record: &log::Record<'_>) -> bool {
    record.target().starts_with("thudo")
}

/// The record's structured fields (`key=value`), in the order they were logged.
pub fn fields(record: &log::Record<'_>) -> Vec<(String, String)> {
    struct Fields(Vec<(String, String)>);
    impl<'k> log::kv::VisitSource<'k> for Fields {
        fn visit_pair(
            &mut self,
            key: log::kv::Key<'k>,
            value: log::kv::Value<'k>,
        ) -> Result<(), log::kv::Error> {
            self.0.push((key.to_string(), value.to_string()));
            Ok(())
        }
    }
    let mut fields = Fields(Vec::new());
    let _ = record.key_values().visit(&mut fields);
    fields.0
}
