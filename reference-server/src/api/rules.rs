//! The API's input rules, each stated once: the handlers check requests
//! with them and the OpenAPI document describes them from the same values
//! (`schema_with` on the request types and parameters), so the document's
//! `minLength`, `maximum`, `pattern`, … cannot drift from what is enforced.

use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::Object;

use crate::ids::IdKind;
use crate::problem::Problem;

/// A text field: its length in characters (Unicode scalar values, as JSON
/// Schema counts them), never a NUL (Postgres text cannot hold one), and for
/// names, more than blanks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    /// Fewest characters.
    pub min_chars: usize,
    /// Most characters.
    pub max_chars: usize,
    /// At least one character that is not a blank ([`Text::BLANKS`]).
    pub not_blank: bool,
}

impl Text {
    /// The characters a name may not consist of only. Spelled out rather than
    /// "whitespace", whose meaning differs between regex engines, so the
    /// document's pattern and this check agree on every input.
    pub const BLANKS: [char; 4] = [' ', '\t', '\n', '\r'];

    /// Checks `value` of `field`; the problem names the field and the rule.
    pub fn check(&self, field: &str, value: &str) -> Result<(), Problem> {
        let len = value.chars().count();
        let blank = self.not_blank && value.chars().all(|c| Self::BLANKS.contains(&c));
        if len < self.min_chars || len > self.max_chars || blank {
            return Err(Problem::invalid(format!(
                "`{field}` must be {} to {} characters{}",
                self.min_chars,
                self.max_chars,
                if self.not_blank { ", not all blank" } else { "" }
            )));
        }
        if value.contains('\0') {
            return Err(Problem::invalid(format!(
                "`{field}` must not contain NUL characters"
            )));
        }
        Ok(())
    }

    /// The rule as a JSON Schema pattern (searched, so anchored here).
    pub fn pattern(&self) -> String {
        if self.not_blank {
            let blanks: String = Self::BLANKS
                .iter()
                .map(|c| c.escape_default().to_string())
                .collect();
            format!(r"^[^\x00]*[^\x00{blanks}][^\x00]*$")
        } else {
            r"^[^\x00]*$".to_string()
        }
    }

    /// The rule as a schema, with `description`.
    pub fn schema(&self, description: &str) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .min_length(Some(self.min_chars))
            .max_length(Some(self.max_chars))
            .pattern(Some(self.pattern()))
            .build()
    }
}

/// A project's name.
pub const PROJECT_NAME: Text = Text {
    min_chars: 1,
    max_chars: 200,
    not_blank: true,
};
/// A project's description.
pub const PROJECT_DESCRIPTION: Text = Text {
    min_chars: 0,
    max_chars: 10_000,
    not_blank: false,
};
/// A document's title.
pub const DOCUMENT_TITLE: Text = PROJECT_NAME;
/// A document's body.
pub const DOCUMENT_BODY: Text = Text {
    min_chars: 0,
    max_chars: 100_000,
    not_blank: false,
};
/// `/api/search?q=`.
pub const SEARCH_QUERY: Text = Text {
    min_chars: 1,
    max_chars: 200,
    not_blank: false,
};

/// `?limit=` of the paginated lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit {
    /// Smallest page.
    pub min: i64,
    /// Largest page.
    pub max: i64,
    /// Without `?limit=`.
    pub default: i64,
}

/// The page sizes every list accepts.
pub const PAGE_LIMIT: PageLimit = PageLimit {
    min: 1,
    max: 100,
    default: 20,
};

impl PageLimit {
    /// The page size `limit` asks for.
    pub fn check(&self, limit: Option<i64>) -> Result<i64, Problem> {
        match limit {
            None => Ok(self.default),
            Some(n) if (self.min..=self.max).contains(&n) => Ok(n),
            Some(_) => Err(Problem::invalid(format!(
                "`limit` must be between {} and {}",
                self.min, self.max
            ))),
        }
    }
}

/// The id of a resource of `kind`, as a path parameter or cursor.
pub fn id_schema(kind: IdKind, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(kind.pattern()))
        .build()
}

/// `schema_with` targets: utoipa takes a function of no arguments.
pub mod schema {
    use super::*;

    /// `?limit=`.
    pub fn page_limit() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Int64,
            )))
            .description(Some(format!(
                "Page size, {}..={} (default {}).",
                PAGE_LIMIT.min, PAGE_LIMIT.max, PAGE_LIMIT.default
            )))
            .minimum(Some(PAGE_LIMIT.min as f64))
            .maximum(Some(PAGE_LIMIT.max as f64))
            .build()
    }
    /// `cursor` of the project lists.
    pub fn project_cursor() -> Object {
        id_schema(IdKind::Project, "The `next_cursor` of the previous page.")
    }
    /// `cursor` of the document list.
    pub fn document_cursor() -> Object {
        id_schema(IdKind::Document, "The `next_cursor` of the previous page.")
    }
    /// `{id}` of a project.
    pub fn project_id() -> Object {
        id_schema(IdKind::Project, "A project id (`prj_…`).")
    }
    /// `{id}` of a document.
    pub fn document_id() -> Object {
        id_schema(IdKind::Document, "A document id (`doc_…`).")
    }
    /// `{id}` of an export.
    pub fn export_id() -> Object {
        id_schema(IdKind::Export, "An export id (`exp_…`).")
    }
    /// `{id}` of an integration.
    pub fn integration_id() -> Object {
        id_schema(IdKind::Integration, "An integration id (`int_…`).")
    }
    /// `name` of a new or renamed project.
    pub fn project_name() -> Object {
        PROJECT_NAME.schema("The project's name.")
    }
    /// `description` of a project.
    pub fn project_description() -> Object {
        PROJECT_DESCRIPTION.schema("The project's description.")
    }
    /// `title` of a document.
    pub fn document_title() -> Object {
        DOCUMENT_TITLE.schema("The document's title.")
    }
    /// `body` of a document.
    pub fn document_body() -> Object {
        DOCUMENT_BODY.schema("The document's text.")
    }
    /// `q` of the search.
    pub fn search_query() -> Object {
        SEARCH_QUERY.schema("Text to find, matched case-insensitively and literally.")
    }
}

/// For `Option<String>` fields of PATCH bodies: a field may be left out,
/// but `null` is not a value (the document says `string`, not nullable).
pub(crate) fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    <String as serde::Deserialize>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules_refuse_blank_names_nul_and_lengths() {
        assert!(PROJECT_NAME.check("name", "a").is_ok());
        assert!(PROJECT_NAME.check("name", " a\t").is_ok());
        // Not a blank by this rule (nor by the document's pattern).
        assert!(PROJECT_NAME.check("name", "\u{3000}").is_ok());
        for bad in ["", " ", "\t\r\n ", "a\0b", &"x".repeat(201)] {
            assert!(PROJECT_NAME.check("name", bad).is_err(), "{bad:?}");
        }
        assert!(PROJECT_DESCRIPTION.check("description", "").is_ok());
        assert!(PROJECT_DESCRIPTION.check("description", "  ").is_ok());
        assert_eq!(
            PROJECT_NAME.pattern(),
            r"^[^\x00]*[^\x00 \t\n\r][^\x00]*$",
            "the blanks as the document spells them"
        );
    }

    /// Tricky inputs: blanks of every engine's idea of whitespace, NUL,
    /// lengths at the edges, non-ASCII.
    fn samples() -> Vec<String> {
        let mut out: Vec<String> = [
            "", " ", "a", " a ", "\t", "\n\r", "\u{3000}", "\u{feff}", "\u{a0}", "\u{85}", "\u{1c}",
            "\u{2028}", "\0", "a\0", "\0a", "é", "🦀", "a\nb", "prj_", "x\n",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for n in [199, 200, 201, 10_000, 10_001] {
            out.push("x".repeat(n));
            out.push(format!("{}é", " ".repeat(n - 1)));
        }
        out
    }

    /// The document's schema of a text rule admits exactly what the
    /// handler's check accepts (by the Rust regex engine, which the
    /// Schemathesis validator's `fancy-regex` builds on).
    #[test]
    fn text_schemas_admit_exactly_what_the_checks_accept() {
        for rule in [PROJECT_NAME, PROJECT_DESCRIPTION, DOCUMENT_BODY, SEARCH_QUERY] {
            let pattern = regex::Regex::new(&rule.pattern()).unwrap();
            for value in samples() {
                let len = value.chars().count();
                let by_schema = pattern.is_match(&value) && (rule.min_chars..=rule.max_chars).contains(&len);
                assert_eq!(
                    by_schema,
                    rule.check("f", &value).is_ok(),
                    "{rule:?} on {value:?}"
                );
            }
        }
    }

    #[test]
    fn id_patterns_admit_exactly_the_ids() {
        for kind in [
            IdKind::Project,
            IdKind::Document,
            IdKind::Export,
            IdKind::Integration,
        ] {
            let pattern = regex::Regex::new(&kind.pattern()).unwrap();
            let id = crate::ids::new_id(kind);
            let mut values = samples();
            values.extend([
                id.clone(),
                format!("{id}\n"),
                format!(" {id}"),
                id.to_uppercase(),
                id.replace('_', "-"),
                format!("{}i", &id[..id.len() - 1]),
                format!("{}0", id),
                crate::ids::new_id(IdKind::User),
            ]);
            for value in values {
                assert_eq!(
                    pattern.is_match(&value),
                    crate::ids::is_id(kind, &value),
                    "{kind:?} on {value:?}"
                );
            }
        }
    }

    #[test]
    fn page_limits() {
        assert_eq!(PAGE_LIMIT.check(None).unwrap(), 20);
        assert_eq!(PAGE_LIMIT.check(Some(100)).unwrap(), 100);
        assert!(PAGE_LIMIT.check(Some(0)).is_err());
        assert!(PAGE_LIMIT.check(Some(101)).is_err());
    }
}
