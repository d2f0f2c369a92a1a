//! Dimensions to count unique users by (`eventwire process --uniques`, checked by
//! `eventwire lint --uniques` against personal-data marks): `SCHEMA:POINTER` or
//! `SCHEMA:NAME=POINTER`.

/// A dimension to count unique users by: `SCHEMA:POINTER` or `SCHEMA:NAME=POINTER`, e.g.
/// `com.example.web/article_view:/data/article_id` (named `article_id`, the pointer's last
/// segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniquesSpec {
    /// `vendor/name` of the schema.
    pub schema: String,
    /// The dimension's name in queries (`by=`).
    pub by: String,
    /// JSON pointer into the good line (`/data/article_id`).
    pub pointer: String,
}

/// Why a `--uniques` spec is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The spec's shape is wrong.
    #[error("`{spec}`: {reason} (expected SCHEMA:POINTER or SCHEMA:NAME=POINTER, like `com.example.web/article_view:/data/article_id`)")]
    Shape {
        /// The spec as given.
        spec: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl UniquesSpec {
    /// Parses a spec.
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        let bad = |reason| SpecError::Shape {
            spec: spec.to_owned(),
            reason,
        };
        let (schema, rest) = spec.split_once(':').ok_or_else(|| bad("no `:`"))?;
        let (by, pointer) = match rest.split_once('=') {
            Some((name, pointer)) => (name.to_owned(), pointer),
            None => {
                let last = rest.rsplit('/').next().unwrap_or_default();
                (last.replace("~1", "/").replace("~0", "~"), rest)
            }
        };
        let mut parts = schema.split('/');
        let shape_ok = parts.next().is_some_and(|v| !v.is_empty())
            && parts.next().is_some_and(|n| !n.is_empty())
            && parts.next().is_none();
        if !shape_ok {
            return Err(bad("the schema must be `vendor/name`"));
        }
        if !pointer.starts_with('/') {
            return Err(bad("the pointer must start with `/`"));
        }
        if by.is_empty() {
            return Err(bad("the dimension needs a name"));
        }
        Ok(UniquesSpec {
            schema: schema.to_owned(),
            by,
            pointer: pointer.to_owned(),
        })
    }
}
