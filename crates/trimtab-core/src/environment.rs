//! The deployment environments Trimtab knows defaults for.

use serde::{Deserialize, Serialize};

/// A stack's (or a resource's) environment: it chooses default objectives and capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Dev,
    Staging,
    Prod,
}

impl Environment {
    pub const ALL: [Environment; 3] = [Self::Dev, Self::Staging, Self::Prod];

    pub fn name(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Staging => "staging",
            Self::Prod => "prod",
        }
    }

    /// One of the names a stack is deployed as (`dev`, `staging`, `prod`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The environment a resource's `environment` (or `env`) tag names: the stack names and
    /// their long forms (`production`, `stage`); anything else is treated as development.
    pub fn from_tag(value: &str) -> Self {
        match value.trim().to_ascii_lowercase().as_str() {
            "prod" | "production" => Self::Prod,
            "staging" | "stage" => Self::Staging,
            _ => Self::Dev,
        }
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_tags_and_json_agree() {
        for e in Environment::ALL {
            assert_eq!(Environment::parse(e.name()), Some(e));
            assert_eq!(Environment::from_tag(e.name()), e);
            assert_eq!(
                serde_json::to_value(e).ok(),
                Some(serde_json::json!(e.name()))
            );
        }
        assert_eq!(Environment::parse("production"), None);
        assert_eq!(Environment::from_tag("Production"), Environment::Prod);
        assert_eq!(Environment::from_tag("stage"), Environment::Staging);
        assert_eq!(Environment::from_tag("qa"), Environment::Dev);
    }
}
