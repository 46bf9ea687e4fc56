//! CNI errors: the spec's well-known codes plus ours (100+), printed as the error JSON.

use serde_json::json;

/// An error code of the CNI spec (1-99) or of this plugin (100+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 1: the runtime asked for a CNI version the plugin does not speak.
    IncompatibleVersion = 1,
    /// 2: a netconf field is not supported.
    UnsupportedField = 2,
    /// 3: the container (its network namespace) does not exist.
    UnknownContainer = 3,
    /// 4: a `CNI_*` environment variable is missing or invalid.
    InvalidEnvironment = 4,
    /// 5: reading or writing a file or socket failed.
    Io = 5,
    /// 6: stdin or a stored file could not be decoded.
    Decode = 6,
    /// 7: the netconf is invalid.
    InvalidNetworkConfig = 7,
    /// 11: try again later (xvsd is not reachable).
    TryAgainLater = 11,
    /// 100: the Pod CIDR has no free address.
    AddressesExhausted = 100,
    /// 101: a kernel (rtnetlink or namespace) operation failed.
    Kernel = 101,
    /// 102: xvsd refused the port.
    XvsdRefused = 102,
    /// 103: CHECK found the Pod's networking differs from what ADD set up.
    CheckFailed = 103,
}

/// A failed CNI operation: code, message and details, as the spec's error JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    /// The code.
    pub code: Code,
    /// A short message.
    pub msg: String,
    /// Longer details (may be empty).
    pub details: String,
}

impl CniError {
    /// An error with `code`.
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// The same error with `details`.
    pub fn details(mut self, d: impl std::fmt::Display) -> Self {
        self.details = d.to_string();
        self
    }

    /// The error JSON of the spec for `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut v = json!({
            "cniVersion": cni_version,
            "code": self.code as u32,
            "msg": self.msg,
        });
        if !self.details.is_empty() {
            v["details"] = json!(self.details);
        }
        v
    }
}

/// Result of a CNI step.
pub type CniResult<T> = Result<T, CniError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_the_spec_fields() {
        let e = CniError::new(Code::InvalidNetworkConfig, "ipam.subnet: missing");
        assert_eq!(
            e.to_json("1.0.0"),
            json!({"cniVersion": "1.0.0", "code": 7, "msg": "ipam.subnet: missing"})
        );
        let e = CniError::new(Code::TryAgainLater, "xvsd not reachable").details("ENOENT");
        assert_eq!(e.to_json("1.0.0")["details"], "ENOENT");
        assert_eq!(e.to_string(), "xvsd not reachable: ENOENT");
    }
}
