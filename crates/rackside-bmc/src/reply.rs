//! Building responses: JSON bodies with their headers, and Redfish error bodies whose
//! `@Message.ExtendedInfo` uses messages of the DMTF Base registry.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ALLOW, CONTENT_TYPE, ETAG, LOCATION, RETRY_AFTER};
use http::StatusCode;
use serde_json::{json, Value};

/// Registry prefix of the Base messages this simulator uses (Base 1.22).
const BASE: &str = "Base.1.22";

/// `Content-Type` of every JSON response.
pub(crate) const JSON_TYPE: &str = "application/json; charset=utf-8";

/// One entry of `@Message.ExtendedInfo`.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) id: String,
    pub(crate) text: String,
    pub(crate) args: Vec<String>,
    pub(crate) severity: &'static str,
    pub(crate) resolution: &'static str,
}

impl Message {
    fn base(
        key: &str,
        text: String,
        args: Vec<String>,
        severity: &'static str,
        resolution: &'static str,
    ) -> Self {
        Self {
            id: format!("{BASE}.{key}"),
            text,
            args,
            severity,
            resolution,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "@odata.type": "#Message.v1_1_1.Message",
            "MessageId": self.id,
            "Message": self.text,
            "MessageArgs": self.args,
            "MessageSeverity": self.severity,
            "Severity": self.severity,
            "Resolution": self.resolution,
        })
    }
}

/// The Base registry messages this simulator sends, with their text filled in.
pub(crate) mod msg {
    use super::Message;

    pub(crate) fn resource_not_found(kind: &str, name: &str) -> Message {
        Message::base(
            "ResourceNotFound",
            format!("The requested resource of type {kind} named '{name}' was not found."),
            vec![kind.into(), name.into()],
            "Critical",
            "Provide a valid resource identifier and resubmit the request.",
        )
    }

    pub(crate) fn operation_not_allowed() -> Message {
        Message::base(
            "OperationNotAllowed",
            "The HTTP method is not allowed on this resource.".into(),
            vec![],
            "Critical",
            "None.",
        )
    }

    pub(crate) fn malformed_json() -> Message {
        Message::base(
            "MalformedJSON",
            "The request body submitted was malformed JSON and could not be parsed by the receiving service.".into(),
            vec![],
            "Critical",
            "Ensure that the request body is valid JSON and resubmit the request.",
        )
    }

    pub(crate) fn property_unknown(property: &str) -> Message {
        Message::base(
            "PropertyUnknown",
            format!("The property {property} is not in the list of valid properties for the resource."),
            vec![property.into()],
            "Warning",
            "Remove the unknown property from the request body and resubmit the request if the operation failed.",
        )
    }

    pub(crate) fn property_not_writable(property: &str) -> Message {
        Message::base(
            "PropertyNotWritable",
            format!("The property {property} is a read-only property and cannot be assigned a value."),
            vec![property.into()],
            "Warning",
            "Remove the property from the request body and resubmit the request if the operation failed.",
        )
    }

    pub(crate) fn property_value_not_in_list(value: &str, property: &str) -> Message {
        Message::base(
            "PropertyValueNotInList",
            format!("The value '{value}' for the property {property} is not in the list of acceptable values."),
            vec![value.into(), property.into()],
            "Warning",
            "Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.",
        )
    }

    pub(crate) fn property_value_type_error(value: &str, property: &str) -> Message {
        Message::base(
            "PropertyValueTypeError",
            format!("The value '{value}' for the property {property} is not a type that the property can accept."),
            vec![value.into(), property.into()],
            "Warning",
            "Correct the value for the property in the request body and resubmit the request if the operation failed.",
        )
    }

    pub(crate) fn action_parameter_missing(action: &str, parameter: &str) -> Message {
        Message::base(
            "ActionParameterMissing",
            format!("The action {action} requires the parameter {parameter} to be present in the request body."),
            vec![action.into(), parameter.into()],
            "Critical",
            "Supply the action with the required parameter in the request body when the request is resubmitted.",
        )
    }

    pub(crate) fn action_parameter_not_supported(parameter: &str, action: &str) -> Message {
        Message::base(
            "ActionParameterNotSupported",
            format!("The parameter {parameter} for the action {action} is not supported on the target resource."),
            vec![parameter.into(), action.into()],
            "Warning",
            "Remove the parameter supplied and resubmit the request if the operation failed.",
        )
    }

    pub(crate) fn action_not_supported(action: &str) -> Message {
        Message::base(
            "ActionNotSupported",
            format!("The action {action} is not supported by the resource."),
            vec![action.into()],
            "Critical",
            "Check the Actions property in the resource for the supported actions.",
        )
    }

    pub(crate) fn precondition_failed() -> Message {
        Message::base(
            "PreconditionFailed",
            "The ETag supplied did not match the ETag required to change this resource.".into(),
            vec![],
            "Critical",
            "Try the operation again using the appropriate ETag.",
        )
    }

    pub(crate) fn precondition_required() -> Message {
        Message::base(
            "PreconditionRequired",
            "A precondition header or annotation is required to change this resource.".into(),
            vec![],
            "Critical",
            "Try the operation again using an If-Match or If-None-Match header and appropriate ETag.",
        )
    }

    pub(crate) fn insufficient_privilege() -> Message {
        Message::base(
            "InsufficientPrivilege",
            "There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.".into(),
            vec![],
            "Critical",
            "Either abandon the operation or change the associated access rights and resubmit the request if the operation failed.",
        )
    }

    pub(crate) fn no_valid_session() -> Message {
        Message::base(
            "NoValidSession",
            "There is no valid session established with the implementation.".into(),
            vec![],
            "Critical",
            "Establish a session before attempting any operations.",
        )
    }

    pub(crate) fn access_denied(uri: &str) -> Message {
        Message::base(
            "AccessDenied",
            format!("While attempting to establish a connection to '{uri}', the service denied access."),
            vec![uri.into()],
            "Critical",
            "Attempt to ensure that the URI is correct and that the service has the appropriate credentials.",
        )
    }

    pub(crate) fn resource_at_uri_unauthorized(uri: &str, detail: &str) -> Message {
        Message::base(
            "ResourceAtUriUnauthorized",
            format!("While accessing the resource at '{uri}', the service received an authorization error '{detail}'."),
            vec![uri.into(), detail.into()],
            "Critical",
            "Ensure that the appropriate access is provided for the service in order for it to access the URI.",
        )
    }

    /// Builds the Base 1.0 `InternalError` that old iDRAC firmware sends for a rejected header.
    pub(crate) fn internal_error_1_0() -> Message {
        Message {
            id: "Base.1.0.InternalError".into(),
            text: "The request failed due to an internal service error.  The service is still operational.".into(),
            args: vec![],
            severity: "Critical",
            resolution: "Resubmit the request.  If the problem persists, consider resetting the service.",
        }
    }

    pub(crate) fn query_parameter_value_type_error(value: &str, parameter: &str) -> Message {
        Message::base(
            "QueryParameterValueTypeError",
            format!("The value '{value}' for the query parameter {parameter} is not a type that the parameter can accept."),
            vec![value.into(), parameter.into()],
            "Warning",
            "Correct the value for the query parameter in the request and resubmit the request if the operation failed.",
        )
    }

    pub(crate) fn query_parameter_unsupported(parameter: &str) -> Message {
        Message::base(
            "QueryParameterUnsupported",
            format!("Query parameter '{parameter}' is not supported."),
            vec![parameter.into()],
            "Warning",
            "Correct or remove the query parameter and resubmit the request.",
        )
    }

    pub(crate) fn service_temporarily_unavailable(seconds: u32) -> Message {
        Message::base(
            "ServiceTemporarilyUnavailable",
            format!("The service is temporarily unavailable.  Retry in {seconds} seconds."),
            vec![seconds.to_string()],
            "Critical",
            "Wait for the indicated retry duration and retry the operation.",
        )
    }

    pub(crate) fn header_invalid(header: &str) -> Message {
        Message::base(
            "HeaderInvalid",
            format!("Header '{header}' is invalid."),
            vec![header.into()],
            "Critical",
            "Resubmit the request with a valid request header.",
        )
    }

    pub(crate) fn property_missing(property: &str) -> Message {
        Message::base(
            "PropertyMissing",
            format!("The property {property} is a required property and must be included in the request."),
            vec![property.into()],
            "Warning",
            "Ensure that the property is in the request body and has a valid value and resubmit the request if the operation failed.",
        )
    }

    pub(crate) fn property_value_format_error(value: &str, property: &str) -> Message {
        Message::base(
            "PropertyValueFormatError",
            format!("The value '{value}' for the property {property} is not a format that the property can accept."),
            vec![value.into(), property.into()],
            "Warning",
            "Correct the value for the property in the request body and resubmit the request if the operation failed.",
        )
    }

    pub(crate) fn query_parameter_value_format_error(value: &str, parameter: &str) -> Message {
        Message::base(
            "QueryParameterValueFormatError",
            format!("The value '{value}' for the parameter {parameter} is not a format that the parameter can accept."),
            vec![value.into(), parameter.into()],
            "Warning",
            "Correct the value for the query parameter in the request and resubmit the request if the operation failed.",
        )
    }

    pub(crate) fn query_not_supported_on_resource() -> Message {
        Message::base(
            "QueryNotSupportedOnResource",
            "Querying is not supported on the requested resource.".into(),
            vec![],
            "Warning",
            "Remove the query parameters and resubmit the request if the operation failed.",
        )
    }

    pub(crate) fn resource_already_exists(kind: &str, property: &str, value: &str) -> Message {
        Message::base(
            "ResourceAlreadyExists",
            format!("The requested resource of type {kind} with the property {property} with the value '{value}' already exists."),
            vec![kind.into(), property.into(), value.into()],
            "Critical",
            "Do not repeat the create operation as the resource was already created.",
        )
    }

    pub(crate) fn property_value_out_of_range(value: &str, property: &str) -> Message {
        Message::base(
            "PropertyValueOutOfRange",
            format!("The value '{value}' for the property {property} is not in the supported range of acceptable values."),
            vec![value.into(), property.into()],
            "Warning",
            "Correct the value for the property in the request body and resubmit the request if the operation failed.",
        )
    }

    pub(crate) fn resource_cannot_be_deleted() -> Message {
        Message::base(
            "ResourceCannotBeDeleted",
            "The delete request failed because the resource requested cannot be deleted.".into(),
            vec![],
            "Critical",
            "Do not attempt to delete a non-deletable resource.",
        )
    }

    pub(crate) fn empty_json() -> Message {
        Message::base(
            "EmptyJSON",
            "The request body submitted contained an empty JSON object and the service is unable to process it.".into(),
            vec![],
            "Warning",
            "Add properties in the JSON object and resubmit the request.",
        )
    }

    pub(crate) fn no_operation() -> Message {
        Message::base(
            "NoOperation",
            "The request body submitted contain no data to act upon and no changes to the resource took place.".into(),
            vec![],
            "Warning",
            "Add properties in the JSON object and resubmit the request.",
        )
    }

    pub(crate) fn property_value_conflict(property: &str, other: &str) -> Message {
        Message::base(
            "PropertyValueConflict",
            format!("The property '{property}' could not be written because its value would conflict with the value of the '{other}' property."),
            vec![property.into(), other.into()],
            "Warning",
            "None.",
        )
    }

    /// A write of `property` = `value` that the state of the resource at `uri` rules out.
    /// `resolution` says what to change first.
    pub(crate) fn property_value_resource_conflict(
        property: &str,
        value: &str,
        uri: &str,
        resolution: &'static str,
    ) -> Message {
        Message::base(
            "PropertyValueResourceConflict",
            format!("The property '{property}' with the requested value of '{value}' could not be written because the value conflicts with the state or configuration of the resource at '{uri}'."),
            vec![property.into(), value.into(), uri.into()],
            "Warning",
            resolution,
        )
    }

    /// iDRAC's message when a user has as many sessions as allowed.
    pub(crate) fn session_limit_rac0218() -> Message {
        Message {
            id: "IDRAC.2.9.RAC0218".into(),
            text: "The maximum number of user sessions is reached.".into(),
            args: vec![],
            severity: "Critical",
            resolution: "Close one or more sessions and retry the operation.",
        }
    }

    /// iDRAC's message while its data sources reload.
    pub(crate) fn data_unavailable_sys518() -> Message {
        Message {
            id: "IDRAC.2.9.SYS518".into(),
            text: "iDRAC is currently unable to display any information because data sources are unavailable.".into(),
            args: vec![],
            severity: "Critical",
            resolution: "Wait for a few minutes and retry the operation.",
        }
    }
}

/// A Redfish error response: status, messages and extra headers.
#[derive(Debug, Clone)]
pub(crate) struct ErrorReply {
    pub(crate) status: StatusCode,
    pub(crate) messages: Vec<Message>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
}

impl ErrorReply {
    pub(crate) fn new(status: StatusCode, message: Message) -> Self {
        Self {
            status,
            messages: vec![message],
            headers: Vec::new(),
        }
    }

    pub(crate) fn many(status: StatusCode, messages: Vec<Message>) -> Self {
        Self {
            status,
            messages,
            headers: Vec::new(),
        }
    }

    pub(crate) fn header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    pub(crate) fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            msg::resource_not_found("Resource", path),
        )
    }

    pub(crate) fn method_not_allowed(allow: &str) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, msg::operation_not_allowed()).header(ALLOW, allow)
    }

    pub(crate) fn into_response(self) -> Response {
        let first = self.messages.first();
        let code = first
            .map(|m| m.id.clone())
            .unwrap_or_else(|| format!("{BASE}.GeneralError"));
        let text = first.map(|m| m.text.clone()).unwrap_or_default();
        let body = json!({
            "error": {
                "code": code,
                "message": text,
                "@Message.ExtendedInfo": self.messages.iter().map(Message::to_json).collect::<Vec<_>>(),
            }
        });
        let mut response = json_response(self.status, crate::tree::serialize(&body));
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

/// Builds a JSON response with `Content-Type` set.
pub(crate) fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE));
    response
}

/// Builds a successful read: body, `ETag` and `Allow`.
pub(crate) fn resource_response(
    body: Bytes,
    content_type: &'static str,
    etag: &str,
    allow: &str,
) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(allow) {
        headers.insert(ALLOW, value);
    }
    response
}

/// 204 No Content.
pub(crate) fn no_content() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// Adds a `Location` header.
pub(crate) fn with_location(mut response: Response, location: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// 503 with `Retry-After`, as a BMC under load sends it.
pub(crate) fn unavailable(seconds: u32) -> ErrorReply {
    ErrorReply::new(
        StatusCode::SERVICE_UNAVAILABLE,
        msg::service_temporarily_unavailable(seconds),
    )
    .header(RETRY_AFTER, &seconds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_carries_extended_info() {
        let reply = ErrorReply::new(StatusCode::BAD_REQUEST, msg::property_unknown("Foo"));
        let response = reply.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[CONTENT_TYPE], JSON_TYPE);
    }

    #[test]
    fn method_not_allowed_sets_allow() {
        let response = ErrorReply::method_not_allowed("GET, HEAD").into_response();
        assert_eq!(response.headers()[ALLOW], "GET, HEAD");
    }
}
