//! The people's API (`/api/v1/…`) as an OpenAPI 3.1 document, generated from the code: the
//! paths from the handlers' `#[utoipa::path]` attributes (listed once, by the route table in
//! [`crate::api`]), the schemas from the API types' `ToSchema` derives, the bearer security
//! scheme, and the error body whose `code` enumerates [`Code::ALL`] with each code's HTTP status.
//! Served without a token at [`PATH`]; `tests/api-schema/run.sh` checks the node against it.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use crate::error::{Code, ErrorBody, Fault, PeerRef};

/// Where the document is served (no token needed: it describes, it reveals nothing).
pub const PATH: &str = "/api/openapi.json";

/// Name of the error response and of the bearer scheme in the document's components.
const ERROR: &str = "Error";
const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tandem node API",
        version = "1",
        description = "The people's HTTP API of a Tandem node (protocols/node-api-v1.md): analysts run \
                       queries, auditors read the ledger and the audit log, admins manage tokens. Every \
                       call needs `Authorization: Bearer tdm_…`; every error answers the `ErrorBody` JSON."
    ),
    components(schemas(ErrorBody, Fault, PeerRef)),
    security(("bearer" = [])),
)]
struct Base;

/// The document: [`crate::api::ApiPaths`]' operations on [`Base`], each answering `4XX`/`5XX`
/// with the error body, and the `{analysis}` parameters listing the registry's analyses.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Base::openapi().merge_from(crate::api::ApiPaths::openapi());
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER.into(),
        RefOr::T(SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("tdm_… (tandem token create)")
                .build(),
        )),
    );
    components.responses.insert(
        ERROR.into(),
        RefOr::T(
            ResponseBuilder::new()
                .description("An error: the stable `code` says what, `fault` who has to act")
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        ),
    );
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            for range in ["4XX", "5XX"] {
                op.responses
                    .responses
                    .insert(range.into(), RefOr::Ref(Ref::from_response_name(ERROR)));
            }
            for p in op.parameters.iter_mut().flatten() {
                if let RefOr::T(p) = p
                    && p.name == "analysis"
                {
                    p.schema = Some(RefOr::T(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(crate::analysis::names()))
                            .into(),
                    ));
                }
            }
        }
    }
    doc
}

/// The operations of a path item.
fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// `GET /api/openapi.json`: the document (built once).
pub async fn serve() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"the document does not serialise: {e}\"}}"))
    });
    ([(header::CONTENT_TYPE, "application/json")], json.as_str())
}

/// The schema of an error body's `code`: the stable codes, each with its HTTP status.
pub fn error_code() -> Object {
    let statuses: Vec<String> = Code::ALL
        .iter()
        .map(|c| match c {
            Code::PeerRefused => format!("`{}` 403/502", c.as_str()),
            _ => format!("`{}` {}", c.as_str(), c.status().as_u16()),
        })
        .collect();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(Code::ALL.iter().map(|c| c.as_str())))
        .description(Some(format!(
            "Stable error code (protocols/node-api-v1.md); the HTTP status of each: {}",
            statuses.join(", ")
        )))
        .build()
}

/// The schema of a query's `group_by` / `peer_group_by` (read by `crate::wire::columns`): a
/// list of column names, or one name (`"a,b"` reads as two), or `null` (no column).
pub fn columns() -> Schema {
    let name = || ObjectBuilder::new().schema_type(Type::String);
    OneOfBuilder::new()
        .item(ArrayBuilder::new().items(name()))
        .item(name().description(Some("one column, or several separated by commas")))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "Columns to group by (none: one bucket): a list of names, one name, or null",
        ))
        .build()
        .into()
}

/// The schema of a [`tandem_dp::PrivacyLoss`]: `{epsilon, delta}`.
pub fn privacy_loss() -> Object {
    let number = |d: &str| {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .description(Some(d))
    };
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("epsilon", number("ε (pure-DP part, basic composition)"))
        .property("delta", number("δ (failure probability)"))
        .required("epsilon")
        .required("delta")
        .build()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn documented(doc: &mut utoipa::openapi::OpenApi) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc.paths.paths.iter_mut() {
            let methods = [
                ("get", item.get.is_some()),
                ("post", item.post.is_some()),
                ("put", item.put.is_some()),
                ("patch", item.patch.is_some()),
                ("delete", item.delete.is_some()),
            ];
            for (m, present) in methods {
                if present {
                    out.insert((m.to_string(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_the_router_serves_is_documented_and_nothing_else() {
        let served: BTreeSet<(String, String)> = crate::api::ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(served.len(), crate::api::ROUTES.len(), "a route twice");
        assert_eq!(documented(&mut document()), served);
    }

    #[test]
    fn every_operation_needs_the_bearer_token_and_answers_errors_in_the_error_body() {
        let mut doc = document();
        let json = serde_json::to_value(&doc).expect("json");
        assert_eq!(json["openapi"], "3.1.0");
        assert_eq!(json["security"][0][BEARER], serde_json::json!([]));
        assert_eq!(
            json["components"]["securitySchemes"][BEARER]["scheme"],
            "bearer"
        );
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                for range in ["4XX", "5XX"] {
                    assert!(op.responses.responses.contains_key(range));
                }
            }
        }
    }

    #[test]
    fn the_error_code_enum_is_every_stable_code_with_its_status() {
        let json = serde_json::to_value(document()).expect("json");
        let code = &json["components"]["schemas"]["ErrorBody"]["properties"]["code"];
        let listed: Vec<&str> = code["enum"]
            .as_array()
            .expect("enum")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let all: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, all);
        let description = code["description"].as_str().expect("description");
        for c in Code::ALL {
            assert!(description.contains(&format!("`{}` ", c.as_str())), "{c:?}");
        }
        assert!(description.contains("`budget_exceeded` 403"));
    }

    #[test]
    fn the_analysis_parameter_lists_the_registry() {
        let json = serde_json::to_value(document()).expect("json");
        let params = &json["paths"]["/api/v1/query/{analysis}"]["post"]["parameters"];
        assert_eq!(
            params[0]["schema"]["enum"],
            serde_json::json!(crate::analysis::names())
        );
    }

    #[test]
    fn queries_take_options_and_reports_carry_derived_details() {
        let json = serde_json::to_value(document()).expect("json");
        let schemas = &json["components"]["schemas"];
        for (schema, field) in [
            ("Query", "options"),
            ("Report", "options"),
            ("Report", "details"),
            ("InputSpec", "option"),
        ] {
            assert!(
                schemas[schema]["properties"].get(field).is_some(),
                "{schema}.{field}: {}",
                schemas[schema]
            );
        }
        assert_eq!(
            schemas["Query"]["properties"]["options"]["additionalProperties"]["type"],
            "string"
        );
    }

    #[test]
    fn group_by_is_documented_as_a_list_a_name_or_null() {
        let json = serde_json::to_value(document()).expect("json");
        let query = &json["components"]["schemas"]["Query"];
        for field in ["group_by", "peer_group_by"] {
            let kinds: Vec<&str> = query["properties"][field]["oneOf"]
                .as_array()
                .unwrap_or_else(|| panic!("{field}: {}", query["properties"][field]))
                .iter()
                .filter_map(|k| k["type"].as_str())
                .collect();
            assert_eq!(kinds, ["array", "string", "null"], "{field}");
            let required = query["required"].as_array().cloned().unwrap_or_default();
            assert!(!required.contains(&field.into()), "{field} is optional");
        }
    }
}
