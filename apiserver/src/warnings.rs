//! Warnings of one request, answered as `Warning: 299 - "<text>"` headers (unknown and
//! duplicate fields under `fieldValidation=Warn`).
//!
//! The verbs are synchronous and run on the request's thread from start to end, so a
//! thread-local scope opened around them by the server collects exactly that request's
//! warnings without every verb passing a collector along. Outside a scope (internal calls),
//! warnings are dropped.

use std::cell::RefCell;

thread_local! {
    static SINK: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Runs `f` collecting the warnings it adds.
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let outer = SINK.with(|s| s.borrow_mut().replace(Vec::new()));
    let out = f();
    let got = SINK.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
    (out, got.unwrap_or_default())
}

/// Adds a warning to the current request's.
pub fn warn(text: impl Into<String>) {
    SINK.with(|s| {
        if let Some(w) = s.borrow_mut().as_mut() {
            w.push(text.into());
        }
    });
}

/// The `Warning` header value for `text` (RFC 7234 code 299, no agent).
pub fn header_value(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("299 - \"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_scoped_to_the_capture() {
        warn("dropped: no scope");
        let ((), got) = capture(|| {
            warn("a");
            let ((), inner) = capture(|| warn("inner"));
            assert_eq!(inner, ["inner"]);
            warn("b");
        });
        assert_eq!(got, ["a", "b"]);
        assert_eq!(
            header_value("unknown field \"x\""),
            "299 - \"unknown field \\\"x\\\"\""
        );
    }
}
