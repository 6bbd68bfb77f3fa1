//! Warnings: what a mount goes on with but the user should fix.

use std::fmt;

/// Something the provider goes on with but the user should fix: it never fails a mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub object: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl Warning {
    pub fn new(message: impl Into<String>) -> Self {
        Self { object: None, field: None, message: message.into() }
    }

    #[must_use]
    pub fn with_object(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }

    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::error::write_located(f, self.object.as_deref(), self.field.as_deref(), &self.message)
    }
}
