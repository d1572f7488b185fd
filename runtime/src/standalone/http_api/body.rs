//! JSON request bodies: the `Content-Type` check (415), the parse into one JSON object (400
//! `invalid_json`), and typed field access whose errors name the field (400 `missing_field` /
//! `invalid_field`). Unknown fields are ignored. The body size is bounded before it is read
//! (`max_body_bytes`) and serde_json bounds nesting depth (128).

use serde_json::{Map, Value};

use super::error::ApiError;
use crate::http::HttpRequest;

/// The body of a POST route as a JSON object. A missing `Content-Type` is taken as JSON (as
/// `curl --data` without `-H` would otherwise be refused for a form type it did not mean).
pub(super) fn json_object(request: &HttpRequest) -> Result<Map<String, Value>, ApiError> {
    if !request.body.is_empty()
        && let Some(content_type) = request.header("content-type")
        && !is_json_media_type(content_type)
    {
        return Err(ApiError::unsupported_media_type());
    }
    if request.body.is_empty() {
        return Err(ApiError::invalid_json(
            "expected a JSON object, got an empty body",
        ));
    }
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::invalid_json(&format!(
            "expected a JSON object, got {}",
            type_name(&other)
        ))),
        Err(e) => Err(ApiError::invalid_json(&format!("not valid JSON ({e})"))),
    }
}

/// `application/json`, with any parameters (`; charset=utf-8`), case-insensitive.
fn is_json_media_type(value: &[u8]) -> bool {
    let essence = value.split(|&b| b == b';').next().unwrap_or(value);
    essence
        .trim_ascii()
        .eq_ignore_ascii_case(b"application/json")
}

/// A required string field.
pub(super) fn required_str<'a>(
    body: &'a Map<String, Value>,
    field: &str,
) -> Result<&'a str, ApiError> {
    optional_str(body, field)?.ok_or_else(|| ApiError::missing(field))
}

/// An optional string field (`null` counts as absent).
pub(super) fn optional_str<'a>(
    body: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(field, "a string", other)),
    }
}

/// An optional non-negative integer field (`null` counts as absent).
pub(super) fn optional_u64(
    body: &Map<String, Value>,
    field: &str,
) -> Result<Option<u64>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| wrong_type(field, "a non-negative integer", v)),
    }
}

/// The `invalid_field` error for a value of the wrong JSON type.
pub(super) fn wrong_type(field: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid(
        field,
        &format!("expected {expected}, got {}", type_name(got)),
    )
}

/// The JSON type of `v`, for messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(content_type: Option<&str>, body: &str) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            path: "/api/publish".into(),
            headers: content_type
                .map(|c| vec![("Content-Type".into(), c.as_bytes().to_vec())])
                .unwrap_or_default(),
            body: body.to_owned().into(),
            ..Default::default()
        }
    }

    #[test]
    fn json_with_or_without_a_content_type_is_parsed() {
        for ct in [
            None,
            Some("application/json"),
            Some("Application/JSON; charset=utf-8"),
        ] {
            let body = json_object(&post(ct, r#"{"topic":"t"}"#)).unwrap();
            assert_eq!(required_str(&body, "topic").unwrap(), "t");
        }
    }

    #[test]
    fn another_content_type_is_415_and_bad_bodies_are_400() {
        let err = json_object(&post(Some("text/plain"), "{}")).unwrap_err();
        assert_eq!(err.status(), 415);
        for bad in ["", "{", "[1]", "\"s\""] {
            assert_eq!(
                json_object(&post(None, bad)).unwrap_err().status(),
                400,
                "{bad}"
            );
        }
    }

    #[test]
    fn field_errors_name_the_field_and_the_type_found() {
        let body = json_object(&post(None, r#"{"topic":5,"code":-1,"reason":null}"#)).unwrap();
        let msg = |e: ApiError| String::from_utf8(e.into_response().body.to_vec()).unwrap();
        assert!(
            msg(required_str(&body, "topic").unwrap_err())
                .contains("topic: expected a string, got an integer")
        );
        assert!(msg(required_str(&body, "sub").unwrap_err()).contains("sub: required"));
        assert!(
            msg(optional_u64(&body, "code").unwrap_err())
                .contains("code: expected a non-negative integer")
        );
        assert_eq!(optional_str(&body, "reason").unwrap(), None);
        assert_eq!(optional_u64(&body, "absent").unwrap(), None);
    }
}
