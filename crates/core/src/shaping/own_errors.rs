//! Which template error details this project wrote: the only details a render error may show.
//! Their words are ours (a filter's name, what it expected, a line and column); everything
//! minijinja itself says of a failed operation may quote its operands (`unable to calculate
//! 731946 // 0`), which can be values read from a secret, so a detail is withheld by where it
//! came from, not by guessing its words. Below both the template module and the bounds, which
//! raise such errors.

use minijinja::ErrorKind;

thread_local! {
    /// The error texts this project's filters and methods raised during the render on this
    /// thread.
    static OWN_ERRORS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// minijinja's own details that are fixed words, quoting nothing of the template's values.
const FIXED_DETAILS: &[&str] = &["recursion limit exceeded"];

/// An error of ours for a template: its text is remembered as ours (see [`OWN_ERRORS`]).
/// `message` must never hold a value of the mount.
pub(crate) fn own_error(kind: ErrorKind, message: impl Into<String>) -> minijinja::Error {
    let message = message.into();
    OWN_ERRORS.with_borrow_mut(|own| {
        // A template that fails the same way in a loop adds its text once.
        if own.len() < 64 && !own.contains(&message) {
            own.push(message.clone());
        }
    });
    minijinja::Error::new(kind, message)
}

/// Starts a render: the details remembered are those of this render only.
pub(crate) fn forget() {
    OWN_ERRORS.with_borrow_mut(Vec::clear);
}

/// Whether `detail` is one this project wrote (or one of minijinja's fixed words).
pub(crate) fn is_ours(detail: &str) -> bool {
    FIXED_DETAILS.contains(&detail) || OWN_ERRORS.with_borrow(|own| own.iter().any(|mine| mine == detail))
}
