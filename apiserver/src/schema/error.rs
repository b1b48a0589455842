//! Field errors, worded and classified as kube-apiserver's `field.Error`s so that a 422 from
//! slipway reads like one from a real cluster.

use std::fmt;

use serde_json::Value;

/// What went wrong with one field (a subset of k8s.io/apimachinery `field.ErrorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    /// A required field is missing.
    Required,
    /// A value is malformed or out of bounds.
    Invalid,
    /// A value is not one of the allowed values.
    NotSupported,
    /// A string is too long.
    TooLong,
    /// A list or map has too many entries.
    TooMany,
    /// A field the schema does not know (reported in strict mode; otherwise pruned).
    Unknown,
    /// A change that is not allowed.
    Forbidden,
}

/// One field error.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.clusterNetwork.pods.cidrBlocks[0]`.
    pub field: String,
    /// Error type.
    pub error_type: ErrorType,
    /// Offending value, when there is one to show.
    pub bad_value: Option<Value>,
    /// Explanation.
    pub detail: String,
}

impl FieldError {
    pub(super) fn new(
        field: &str,
        error_type: ErrorType,
        bad_value: Option<&Value>,
        detail: String,
    ) -> Self {
        Self {
            field: field.to_string(),
            error_type,
            bad_value: bad_value.cloned(),
            detail,
        }
    }

    /// kube-apiserver's reason string for the cause (`FieldValueRequired`, ...).
    pub fn reason(&self) -> &'static str {
        match self.error_type {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Unknown => "FieldValueInvalid",
            ErrorType::Forbidden => "FieldValueForbidden",
        }
    }

    /// The error without the field path, as kube-apiserver puts it in `details.causes[].message`.
    pub fn message(&self) -> String {
        let bad = self
            .bad_value
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default();
        match self.error_type {
            ErrorType::Required => "Required value".into(),
            ErrorType::Invalid => format!("Invalid value: {bad}: {}", self.detail),
            ErrorType::NotSupported => format!("Unsupported value: {bad}: {}", self.detail),
            ErrorType::TooLong => format!("Too long: {}", self.detail),
            ErrorType::TooMany => format!("Too many: {}", self.detail),
            ErrorType::Unknown => format!("unknown field \"{}\"", self.field),
            ErrorType::Forbidden => format!("Forbidden: {}", self.detail),
        }
    }

    /// A Forbidden error.
    pub fn forbidden(field: &str, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            error_type: ErrorType::Forbidden,
            bad_value: None,
            detail: detail.into(),
        }
    }

    /// An Invalid error.
    pub fn invalid(field: &str, bad_value: Value, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            error_type: ErrorType::Invalid,
            bad_value: Some(bad_value),
            detail: detail.into(),
        }
    }

    /// A TooLong error.
    pub fn too_long(field: &str, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            error_type: ErrorType::TooLong,
            bad_value: None,
            detail: detail.into(),
        }
    }

    /// A Required error.
    pub fn required(field: &str) -> Self {
        Self {
            field: field.into(),
            error_type: ErrorType::Required,
            bad_value: None,
            detail: String::new(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error_type {
            ErrorType::Unknown => f.write_str(&self.message()),
            _ => write!(f, "{}: {}", self.field, self.message()),
        }
    }
}
