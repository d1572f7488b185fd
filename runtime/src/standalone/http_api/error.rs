//! The one error shape of the HTTP API: `{"error": {"code": "<snake_case>", "message": "…"}}`
//! with its status, plus the `Allow` (405) and `WWW-Authenticate` (401) headers. Messages name
//! the offending field first (`topic: required`), so a client can point at it.

use crate::http::HttpResponse;

/// Longest piece of client input (a path, an id) echoed back in a message.
const MAX_ECHOED_CHARS: usize = 100;

/// A refused request: status, machine-readable code, human message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ApiError {
    status: u16,
    code: &'static str,
    message: String,
    /// `Allow` of a 405.
    allow: Option<&'static str>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: String) -> ApiError {
        ApiError {
            status,
            code,
            message,
            allow: None,
        }
    }

    /// 401: no `Authorization: apikey …`, another scheme, or the wrong key.
    pub(super) fn unauthorized() -> ApiError {
        ApiError::new(
            401,
            "unauthorized",
            "missing or invalid API key (send the header `Authorization: apikey <key>`)".into(),
        )
    }

    /// 404: no such route (or console file).
    pub(super) fn not_found(path: &str) -> ApiError {
        ApiError::new(404, "not_found", format!("no such route: {}", echo(path)))
    }

    /// 404: the connection named by `conn_id` is not registered.
    pub(super) fn unknown_connection(conn_id: &str) -> ApiError {
        ApiError::new(
            404,
            "unknown_connection",
            format!("conn_id: no connection {}", echo(conn_id)),
        )
    }

    /// 405 with `Allow: <allow>`.
    pub(super) fn method_not_allowed(path: &str, allow: &'static str) -> ApiError {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                405,
                "method_not_allowed",
                format!("{} accepts {allow} only", echo(path)),
            )
        }
    }

    /// 400: the body is not a JSON object.
    pub(super) fn invalid_json(reason: &str) -> ApiError {
        ApiError::new(400, "invalid_json", format!("body: {reason}"))
    }

    /// 400: a required field (or query parameter) is absent.
    pub(super) fn missing(field: &str) -> ApiError {
        ApiError::new(400, "missing_field", format!("{field}: required"))
    }

    /// 400: a field (or query parameter) is present but unusable.
    pub(super) fn invalid(field: &str, reason: &str) -> ApiError {
        ApiError::new(400, "invalid_field", format!("{field}: {reason}"))
    }

    /// 409: `/api/token` without an HS256 secret to sign with.
    pub(super) fn token_unavailable(reason: &str) -> ApiError {
        ApiError::new(409, "token_unavailable", reason.into())
    }

    /// 413: the body is over `max_body_bytes`.
    pub(super) fn body_too_large(limit: usize) -> ApiError {
        ApiError::new(
            413,
            "body_too_large",
            format!("request body too large (limit {limit} bytes)"),
        )
    }

    /// 415: a body with a Content-Type other than `application/json`.
    pub(super) fn unsupported_media_type() -> ApiError {
        ApiError::new(
            415,
            "unsupported_media_type",
            "Content-Type: the body must be application/json".into(),
        )
    }

    /// The HTTP status.
    #[cfg(test)]
    pub(super) fn status(&self) -> u16 {
        self.status
    }

    /// The response on the wire.
    pub(super) fn into_response(self) -> HttpResponse {
        let mut response = HttpResponse::error(self.status, self.code, &self.message);
        if let Some(allow) = self.allow {
            response.headers.push(("Allow".into(), allow.into()));
        }
        if self.status == 401 {
            response
                .headers
                .push(("WWW-Authenticate".into(), "apikey".into()));
        }
        response
    }
}

/// `input`, cut to [`MAX_ECHOED_CHARS`] characters.
fn echo(input: &str) -> String {
    let mut out: String = input.chars().take(MAX_ECHOED_CHARS).collect();
    if out.len() < input.len() {
        out.push('…');
    }
    out
}
