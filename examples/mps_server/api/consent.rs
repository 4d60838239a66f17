//! AMT user consent: request a code (shown on the device's screen), send it, or cancel.
//! `00000000` (or any 6 digits) is accepted as the code shown.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::devices::{Store, connected_device};
use super::error::{ApiError, ApiResult, parse_body};

/// An AMT answer with `ReturnValue` 0, in the shape of MPS's user consent routes.
fn consent_answer(method: &str) -> Json<Value> {
    Json(json!({
        "Header": { "Action": format!("http://intel.com/wbem/wscim/1/ips-schema/1/IPS_OptInService/{method}Response") },
        "Body": { "ReturnValue": 0, "ReturnValueStr": "SUCCESS" },
    }))
}

pub(crate) async fn request_code(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    connected_device(&store, &guid).await?;
    Ok(consent_answer("StartOptIn"))
}

pub(crate) async fn cancel_code(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    connected_device(&store, &guid).await?;
    Ok(consent_answer("CancelOptIn"))
}

/// `{"consentCode": "123456"}` (6 digits, as a string or a number); validated before the
/// device is looked up, as in MPS.
pub(crate) async fn send_code(
    State(store): State<Store>,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: Value = parse_body(&body)?;
    let code = match body.get("consentCode") {
        Some(Value::String(code)) => code.clone(),
        Some(Value::Number(code)) => format!("{code:0>6}"),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "consentCode must be 6 digits, got {other}"
            )));
        }
        None => return Err(ApiError::bad_request("consentCode is required")),
    };
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "consentCode must be 6 digits, got {code:?}"
        )));
    }
    connected_device(&store, &guid).await?;
    Ok(consent_answer("SendOptInCode"))
}
