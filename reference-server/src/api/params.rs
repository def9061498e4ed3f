//! The parameters of the API's operations as the OpenAPI document states
//! them, built from [`rules`](super::rules) (utoipa's derive cannot take a
//! parameter's schema and its `required` from a function, so these are
//! written out). The handlers read the same names.

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Object, Required};
use utoipa::IntoParams;

use super::rules::schema;

fn param(name: &str, at: ParameterIn, required: bool, description: &str, schema: Object) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(at)
        .required(if required { Required::True } else { Required::False })
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn text(description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .build()
}

macro_rules! params {
    ($(#[$doc:meta])* $name:ident => [$($param:expr),* $(,)?]) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl IntoParams for $name {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                vec![$($param),*]
            }
        }
    };
}

params!(
    /// `{id}` of `/api/projects/{id}` and `/api/projects/{id}/documents`.
    ProjectIdPath => [param("id", ParameterIn::Path, true, "The project.", schema::project_id())]
);
params!(
    /// `{id}` of `/api/documents/{id}`.
    DocumentIdPath => [param("id", ParameterIn::Path, true, "The document.", schema::document_id())]
);
params!(
    /// `{id}` of `/api/exports/{id}`.
    ExportIdPath => [param("id", ParameterIn::Path, true, "The export.", schema::export_id())]
);
params!(
    /// `{id}` of `/api/integrations/{id}`.
    IntegrationIdPath => [param("id", ParameterIn::Path, true, "The connection.", schema::integration_id())]
);
params!(
    /// `{org_id}` of `/api/orgs/{org_id}/projects`.
    OrgIdPath => [param(
        "org_id",
        ParameterIn::Path,
        true,
        "Must be the token's active organization (403 `org_mismatch` otherwise).",
        text("An organization id."),
    )]
);
params!(
    /// `?limit=&cursor=` of the project lists.
    ProjectPageQuery => [
        param("limit", ParameterIn::Query, false, "Page size.", schema::page_limit()),
        param("cursor", ParameterIn::Query, false, "Where the previous page ended.", schema::project_cursor()),
    ]
);
params!(
    /// `?limit=&cursor=` of the document list.
    DocumentPageQuery => [
        param("limit", ParameterIn::Query, false, "Page size.", schema::page_limit()),
        param("cursor", ParameterIn::Query, false, "Where the previous page ended.", schema::document_cursor()),
    ]
);
params!(
    /// `?q=` of `/api/search`.
    SearchQuery => [param("q", ParameterIn::Query, true, "What to find.", schema::search_query())]
);
params!(
    /// The provider's redirect back to `/api/integrations/{provider}/callback`.
    CallbackQuery => [
        param("code", ParameterIn::Query, false, "The authorization code.", text("Opaque, from the provider.")),
        param(
            "state",
            ParameterIn::Query,
            false,
            "The state `connect` issued: single use, bound to the org, user, session and provider that started the flow.",
            text("Opaque, from `connect`'s `authorize_url`."),
        ),
        param("error", ParameterIn::Query, false, "Set when the user refused or the provider failed.", text("An OAuth error code.")),
    ]
);

/// `{provider}` of the integration routes: one of the configured providers.
pub fn provider_path(providers: &[String]) -> Parameter {
    let mut schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("A configured provider's name (`oauth.providers`)."));
    if !providers.is_empty() {
        schema = schema.enum_values(Some(providers.iter().cloned()));
    }
    param(
        "provider",
        ParameterIn::Path,
        true,
        "The provider (404 for one this server does not know).",
        schema.build(),
    )
}

/// `{provider}` as the static document states it (the served one lists
/// the configured providers).
#[derive(Debug)]
pub struct ProviderPath;

impl IntoParams for ProviderPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![provider_path(&[])]
    }
}
