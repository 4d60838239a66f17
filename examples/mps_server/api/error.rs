//! Errors as MPS answers them: the status, and `{"error": "Not Found", "message": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mps_mqtt_events::EventDetails;
use serde_json::json;

/// An error response in MPS's shape: `{"error": "Not Found", "message": "..."}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    /// What the event of this request says, where the handler knows better than the status.
    details: Option<&'static EventDetails>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            details: None,
        }
    }

    /// Says what the request's event should say (see `mps_mqtt_events::EventDetails`).
    pub(crate) fn with_details(mut self, details: &'static EventDetails) -> Self {
        self.details = Some(details);
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn unknown_device(guid: &str) -> Self {
        Self::not_found(format!("device {guid} not found"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.status.canonical_reason().unwrap_or("Error");
        let mut response = (
            self.status,
            Json(json!({ "error": error, "message": self.message })),
        )
            .into_response();
        if let Some(details) = self.details {
            details.attach(&mut response);
        }
        response
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Parses a JSON body; malformed JSON or a wrong shape is a 400 with a JSON error body.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}
