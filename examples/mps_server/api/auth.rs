//! Logging in (`POST /authorize`, MPS's default `standalone` / `G@ppm0ym`) and the token for a
//! redirection session. Tokens are placeholders: this imitation checks none.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::devices::{Store, connected_device};
use super::error::{ApiError, ApiResult, parse_body};

/// MPS's default web administrator (`web_admin_user` / `web_admin_password`).
const ADMIN: (&str, &str) = ("standalone", "G@ppm0ym");

/// `{"username": "...", "password": "..."}`: a missing field is a 400, wrong ones a 401.
pub(crate) async fn authorize(body: Bytes) -> ApiResult<Json<Value>> {
    let body: Value = parse_body(&body)?;
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("{name} is required")))
    };
    let (user, password) = (field("username")?, field("password")?);
    if (user, password) != ADMIN {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Incorrect Username and/or Password!",
        ));
    }
    Ok(Json(json!({ "token": "demo-token-not-a-jwt" })))
}

/// The short-lived token a console uses to open KVM, SOL or IDER on a connected device.
pub(crate) async fn redirection_token(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let device = connected_device(&store, &guid).await?;
    Ok(Json(
        json!({ "token": format!("demo-redirection-token-{}", device.guid) }),
    ))
}
